// The repository config parser against damaged files: every failure is one RepoFormatError
// sentence that shows a bad value on one line, whatever the file holds (reader fuzz finding: a
// value continued over a second line came out as a two-line message).
import { expect, test } from 'vitest';

import { RepoFormatError, parseRepoConfig } from './repo-config.js';

const ID = 'ab'.repeat(32);
const config = (extra: string) => `[repository]\nversion = 1\nsegments_per_dir = 1000\nid = ${ID}\n${extra}`;

test('a good config parses', () => {
  expect(parseRepoConfig(config('max_segment_size = 524288000\nappend_only = 0\n'))).toMatchObject({ version: 1, maxSegmentSize: 524288000, appendOnly: false, key: null });
});

test.each([
  ['a size continued on a second line, with an escape sequence', config('max_segment_size = 524288000\n\t\u001b[31mred\n'), "config: max_segment_size '524288000 [31mred' is not a size"],
  ['a boolean continued on a second line', config('append_only = 0\n 1\n'), "config: append_only '0 1' is not a boolean"],
  ['a version continued on a second line', `[repository]\nversion = 1\n 2\nid = ${ID}\n`, "config: repository version 1 2 is not borg 1.x's version 1"],
  ['a line with control characters', config('\u0007bell\u0000\n'), "config: cannot read the line ' bell '"],
  ['a very long value', config(`max_segment_size = ${'9'.repeat(200)}x\n`), `config: max_segment_size '${'9'.repeat(60)}...' is not a size`],
])('%s is one line of a RepoFormatError', (_what, text, message) => {
  let error: unknown;
  try {
    parseRepoConfig(text);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(RepoFormatError);
  expect((error as Error).message).toBe(message);
});
