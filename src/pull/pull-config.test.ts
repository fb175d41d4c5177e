import { expect, test } from 'vitest';

import { parseServeConfig } from '../gateway/serve-config.js';

test("serve's pull concurrency: 2 unless the config file says otherwise; at least 1, in one sentence", () => {
  expect(parseServeConfig({}, {}).pullConcurrency).toBe(2);
  expect(parseServeConfig({}, {}, { pullConcurrency: 4 }).pullConcurrency).toBe(4);
  expect(() => parseServeConfig({}, {}, { pullConcurrency: 0 })).toThrow(/^config file, pullConcurrency: /);
});
