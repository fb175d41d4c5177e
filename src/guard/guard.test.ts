// Regressions found by the guard fuzzer (test/fuzz/guard-target.ts, `npm run fuzz`): whole
// sessions run in-process through runGuardSession with the fuzzer's fake `borg serve` and store,
// which check every frame the child gets against the policy. Each case is a real recorded borg
// session (test/fuzz/corpus/guard) cut or changed the way the fuzzer found it.

import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, test } from 'vitest';

import {
  createGuardHarness,
  guardRepoDirName,
  loadGuardCorpus,
  runGuardInput,
  type GuardCorpus,
  type GuardInput,
} from '../../test/fuzz/guard-target.js';
import { MsgMap, encode, type MsgValue } from '../rpc/msgpack.js';

const CORPUS = fileURLToPath(new URL('../../test/fuzz/corpus', import.meta.url));

let corpus: GuardCorpus;
let work: string;
let harness: ReturnType<typeof createGuardHarness>;

beforeAll(() => {
  corpus = loadGuardCorpus(CORPUS);
  work = mkdtempSync(join(tmpdir(), 'borgkeep-guard-test-'));
  cpSync(corpus.repoDir, join(work, guardRepoDirName), { recursive: true });
  harness = createGuardHarness(work, corpus);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const frames = (name: string): readonly Buffer[] => {
  const s = corpus.sessions.find((x) => x.name === name);
  if (!s) throw new Error(`no recorded session ${name}`);
  return s.frames;
};

const session = (over: Partial<GuardInput> & Pick<GuardInput, 'chunks'>): GuardInput => ({
  role: 'append',
  keyState: 'ok',
  grantState: 'ok',
  gateOpen: false,
  writesPerDay: null,
  child: 'normal',
  childAt: 1,
  stopAt: null,
  ...over,
});

test('the recorded borg create runs clean through the harness (the checks themselves pass on good input)', async () => {
  const run = await runGuardInput(session({ chunks: frames('create'), role: 'full' }), harness, 5000);
  expect(run.violations).toEqual([]);
  expect(run.outcome).toMatchObject({ result: 'ok', detail: null });
  // An append key may not put the chunks again: they are in the recorded repository already.
  const append = await runGuardInput(session({ chunks: frames('create') }), harness, 5000);
  expect(append.violations).toEqual([]);
  expect(append.outcome?.detail).toMatch(/^\d+ calls? refused: put/);
});

test('borg serve answering out of order ends the session as an error, without leaving the guard waiting on its own __len__', async () => {
  // create: negotiate, open, get, load_key x2, get_free_nonce, commit_nonce_reservation; the
  // first put makes the guard ask __len__ (the child's 8th frame), answered with the wrong msgid.
  const run = await runGuardInput(session({ chunks: frames('create'), child: 'misorder', childAt: 8 }), harness, 5000);
  expect(run.violations).toEqual([]);
  expect(run.outcome).toMatchObject({ result: 'error', detail: 'borg serve answered out of order' });
});

test("borg serve refusing the open ends the session as an error that says why, in the client's terms", async () => {
  const run = await runGuardInput(session({ chunks: frames('list'), child: 'errors', childAt: 1 }), harness, 5000);
  expect(run.violations).toEqual([]);
  expect(run.outcome?.result).toBe('error');
  expect(run.outcome?.detail).toBe('borg serve could not open the repository: DoesNotExist: Repository /./repo does not exist.');
});

test('an open whose lock_wait is a float beyond 2^53 is refused as wrongly typed, not an internal error', async () => {
  const open = encode(
    MsgMap.of([
      ['i', 2],
      ['m', Buffer.from('open')],
      ['a', MsgMap.of([['path', Buffer.from('/./repo')], ['create', false], ['lock_wait', { float: 1e300 } as unknown as MsgValue], ['lock', true], ['exclusive', null], ['append_only', false]])],
    ]),
  );
  const run = await runGuardInput(session({ chunks: [frames('list')[0], open] }), harness, 5000);
  expect(run.violations).toEqual([]);
  expect(run.outcome).toMatchObject({ result: 'denied', detail: '1 call refused: open' });
});

test.each(['read', 'append', 'prune'] as const)("a refused second open(create=True) does not let the %s key's next save_key replace the repository key", async (role) => {
  // Found by the fuzzer: the guard took any open(create=True), even one it refused, as the init
  // whose save_key a non-full key may send, and forwarded the save_key to borg serve.
  const request = (msgid: number, method: string, args: Array<[string, MsgValue]>): Buffer =>
    encode(MsgMap.of([['i', msgid], ['m', Buffer.from(method)], ['a', MsgMap.of(args)]]));
  const [negotiate, open] = frames('list');
  const run = await runGuardInput(
    session({
      role,
      chunks: [
        negotiate,
        open,
        request(3, 'open', [['path', Buffer.from('/./repo')], ['create', true], ['lock_wait', 1], ['lock', true], ['exclusive', null], ['append_only', false]]),
        request(4, 'save_key', [['keydata', Buffer.from('a key of the attacker')]]),
      ],
    }),
    harness,
    5000,
  );
  expect(run.violations).toEqual([]); // the fake borg serve checks it never got the save_key
  expect(run.outcome).toMatchObject({ result: 'denied', detail: '2 calls refused: open, save_key' });
});
