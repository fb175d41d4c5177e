// The API refuses bad input in the CLI's sentences, not the schema library's: for the same value,
// the HTTP answer's message is the line the real `borgkeep` CLI prints (without "borgkeep: "), for
// a quota, an interval, a name, a grant role, a user role, an address range and an expiry; and a
// value only the API can send (a string for a number) still gets a sentence of ours.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ed25519Line } from '../support/temp-store.js';
import { createSandbox, type CliSandbox } from '../cli/cli-harness.js';
import { startApi, type ApiClient, type ApiHarness } from './api-harness.js';

const V1 = '/api/v1';
let h: ApiHarness;
let admin: ApiClient;
let cli: CliSandbox;

beforeAll(async () => {
  h = await startApi();
  admin = await h.userClient('ann', 'admin');
  expect((await admin.call('POST', `${V1}/repositories`, { name: 'r' })).status).toBe(201);
  expect((await admin.call('POST', `${V1}/keys`, { name: 'k', publicKey: ed25519Line('k@test') })).status).toBe(201);
  cli = createSandbox();
  await cli.ok(['repo', 'create', 'r']);
  await cli.ok(['key', 'add', 'k', '--file', cli.keyFile('k')]);
}, 60_000);
afterAll(async () => {
  await h?.close();
  cli?.cleanup();
});

/** The API's refusal and the CLI's, for the same value: the same sentence. */
async function same(api: [method: string, path: string, body: unknown], args: string[]): Promise<string> {
  const answer = await admin.call(api[0], `${V1}${api[1]}`, api[2]);
  expect(answer.status).toBe(400);
  const line = await cli.run(args);
  expect(line.code).not.toBe(0);
  const sentence = line.stderr.trim().replace(/^borgkeep: /, '');
  expect(answer.body).toEqual({ code: 'BK_ERR_INVALID_INPUT', message: sentence });
  return sentence;
}

describe('bad input in the CLI’s sentences', () => {
  it('words a quota, an interval and a name as the CLI does', async () => {
    expect(await same(['POST', '/repositories', { name: 'q', quotaBytes: 5_000_000 }], ['repo', 'create', 'q', '--quota', '5000000'])).toBe("the quota '5000000' is too small; borg needs at least 10M");
    expect(await same(['PATCH', '/repositories/r', { quotaBytes: 9_999_999 }], ['repo', 'set', 'r', '--quota', '9999999'])).toContain('is too small; borg needs at least 10M');
    expect(await same(['POST', '/repositories', { name: 'i', expectedIntervalSeconds: 30 }], ['repo', 'create', 'i', '--interval', '30'])).toBe(
      'the expected backup interval must be a whole number of seconds from 60 to 31622400, not 30',
    );
    await same(['POST', '/repositories', { name: 'x'.repeat(70) }], ['repo', 'create', 'x'.repeat(70)]);
    await same(['POST', '/repositories', { name: '' }], ['repo', 'create', '']);
  });

  it('words roles, address ranges and expiries as the CLI does', async () => {
    expect(await same(['POST', '/grants', { key: 'k', repository: 'r', role: 'root' }], ['grant', 'k', 'r', '--role', 'root'])).toBe("unknown role 'root'; use read, append, prune or full");
    expect(await same(['POST', '/users', { name: 'eve', role: 'root', password: 'a long enough password' }], ['user', 'add', 'eve', '--role', 'root'])).toBe(
      "unknown user role 'root'; use admin, operator or viewer",
    );
    const long = 'x'.repeat(70);
    expect(await same(['POST', '/grants', { key: 'k', repository: 'r', role: 'append', fromCidrs: [long] }], ['grant', 'k', 'r', '--role', 'append', '--from', long])).toBe(
      `'${long}' is not an IPv4 or IPv6 address or CIDR range`,
    );
    expect(await same(['POST', '/grants', { key: 'k', repository: 'r', role: 'append', expiresAt: '2030-01-01T00:00' }], ['grant', 'k', 'r', '--role', 'append', '--expires', '2030-01-01T00:00'])).toBe(
      "'2030-01-01T00:00' has no time zone; end it with Z for UTC or an offset such as +02:00",
    );
  });

  it('words what only the API can send in the same style, never in zod’s words', async () => {
    const cases: Array<[string, string, unknown, RegExp]> = [
      ['POST', '/repositories', { name: 's', quotaBytes: '20G' }, /^the quota must be at least 10M \(10000000 bytes\), since borg refuses less$/],
      ['POST', '/repositories', { name: 's', expectedIntervalSeconds: 'daily' }, /^the expected backup interval must be a whole number of seconds from 60 to 31622400, not daily$/],
      ['POST', '/grants', { key: 'k', repository: 'r', role: 'append', writesPerDay: '5' }, /^backups per day \(writes per day\) must be a whole number of at least 1, not 5$/],
      ['POST', '/grants', { key: 'k', repository: 'r', role: 'append', fromCidrs: '10.0.0.0/8' }, /^the allowed address ranges must be a list/],
      ['POST', '/grants', { key: 'k', repository: 'r', role: 'append', expiresAt: 'tomorrow' }, /^'tomorrow' is not a time; use a date-time with a zone, such as 2030-12-31T18:00Z$/],
      ['POST', '/grants', { key: 'k', repository: 'r', role: 'append', expiresAt: '2030-12-31' }, /^'2030-12-31' is not a date-time with a zone; use a date-time with a zone/],
      ['PATCH', '/users/ann', { role: 'boss' }, /^unknown user role 'boss'; use admin, operator or viewer$/],
    ];
    for (const [method, path, body, message] of cases) {
      const answer = await admin.call(method, `${V1}${path}`, body);
      expect(answer.status, JSON.stringify(body)).toBe(400);
      expect(answer.body.message, JSON.stringify(body)).toMatch(message);
      expect(answer.body.message).not.toMatch(/expected (number|string|array)|Invalid|Too small|received|field '/);
    }
  });
});
