// --verify-objects with the real borg client and a hand-written one, on a repokey repository whose
// key borgkeep holds (`borgkeep repo key`): stock backups go through (lz4 and zstd), and a put
// whose content is not what its id names (another object's bytes, a forged object sealed with
// the right key, a broken MAC) is refused before borg serve sees it, with the repository
// unchanged afterwards (same files, same last transaction, `borg check` clean).

import { createCipheriv, createHmac, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { unlockKey, type BorgKey } from '../../src/repository/borg-key.js';
import { latestIndexTransaction } from '../../src/repository/hash-index.js';
import { parseRepoConfig } from '../../src/repository/repo-config.js';
import { listSegments, readSegment } from '../../src/repository/segments.js';
import { PASSPHRASE, makeSourceTree } from '../helpers/borgkeep-env.js';
import { KEYS, MANIFEST_ID, createHostileFixture, expectDenied, expectOk, type HostileFixture } from '../helpers/hostile-fixture.js';
import type { RpcClient } from '../helpers/rpc-client.js';

let f: HostileFixture;
let repoDir: string;
let key: BorgKey;
/** Committed objects of the repository other than the manifest: [id, envelope]. */
let stored: Array<{ id: Buffer; envelope: Buffer }>;

beforeAll(async () => {
  f = await createHostileFixture({ label: 'verify-objects', encryption: 'repokey' });
  repoDir = f.repoDir('main');
  const passFile = join(f.env.root, 'passphrase');
  writeFileSync(passFile, PASSPHRASE);
  await f.env.cliOk(['repo', 'key', 'main', '--passphrase-file', passFile]);
  await f.env.cliOk(['grant', KEYS.append, 'main', '--role', 'append', '--verify-objects']);
  const config = parseRepoConfig(readFileSync(join(repoDir, 'config'), 'utf8'));
  key = unlockKey(config.key ?? '', PASSPHRASE, config.id);
  stored = [];
  for (const file of listSegments(repoDir)) {
    for (const e of (await readSegment(file, () => true)).entries) if (e.tag === 'put' && e.data && !e.id.equals(MANIFEST_ID)) stored.push({ id: e.id, envelope: e.data });
  }
  f.rebaseline('main');
}, 300_000);
afterAll(() => f?.cleanup());

/** An object sealed as a client holding the key seals one (repokey: AES-CTR, HMAC-SHA256), uncompressed. */
function seal(plain: Buffer): Buffer {
  const iv = randomBytes(8);
  const payload = Buffer.concat([Buffer.from([0, 0]), plain]);
  const ct = createCipheriv('aes-256-ctr', key.encKey, Buffer.concat([Buffer.alloc(8), iv])).update(payload);
  const mac = createHmac('sha256', key.encHmacKey).update(Buffer.concat([iv, ct])).digest();
  return Buffer.concat([Buffer.from([0x03]), mac, iv, ct]);
}
const idOf = (plain: Buffer): Buffer => createHmac('sha256', key.idKey).update(plain).digest();

/** Ends the session, which must exit 0, and checks the repository is what it was. */
async function endUnchanged(c: RpcClient, txnBefore: number | null): Promise<void> {
  expect(await f.finish(c)).toBe(0);
  f.expectUnchanged('main');
  expect(latestIndexTransaction(repoDir)).toBe(txnBefore);
}

describe('an append grant with --verify-objects', () => {
  test('refuses a put whose content is not what its id names, before borg serve sees it', async () => {
    const txn = latestIndexTransaction(repoDir);
    const c = await f.open('append');
    const victim = stored[0];
    const newId = Buffer.alloc(32, 0x5a);
    const put = async (id: Buffer, data: Buffer, why: string, reason: string) => {
      const msgid = c.request('put', { id, data, wait: true });
      expectDenied(await c.reply(msgid), { msgid, method: 'put', role: 'append', key: KEYS.append, repo: 'main', why });
      // The guard answers before its ledger write is done: on a loaded machine the row comes a moment later.
      await expect.poll(() => f.session(c).denials.at(-1)).toMatchObject({ method: 'put', reason });
    };
    // Another object's bytes under a new id: what a poisoning client does most simply.
    await put(newId, victim.envelope, `object ${newId.subarray(0, 8).toString('hex')}…: its content does not match its id`, 'BK_DENY_OBJECT_ID');
    // A forged object, sealed with the repository's own key, under an id of other content.
    const poison = Buffer.from('poisoned content under the id of a chunk older archives share');
    const wanted = idOf(Buffer.from('what the chunk really holds'));
    await put(wanted, seal(poison), `object ${wanted.subarray(0, 8).toString('hex')}…: its content does not match its id`, 'BK_DENY_OBJECT_ID');
    // A broken MAC: borg could never read it back.
    const broken = seal(poison);
    broken[5] ^= 0xff;
    await put(idOf(poison), broken, 'its MAC does not verify with the repository key', 'BK_DENY_OBJECT_ENVELOPE');
    // The session goes on serving.
    const r = await c.call('__len__', {});
    expect(r.exceptionClass).toBeNull();
    await endUnchanged(c, txn);
  });

  test('forwards a put whose content matches its id', async () => {
    const c = await f.open('append');
    const plain = randomBytes(5000);
    const msgid = c.request('put', { id: idOf(plain), data: seal(plain), wait: true });
    expectOk(await c.reply(msgid), msgid);
    expect(f.session(c).denials).toEqual([]);
    expect(await f.finish(c)).toBe(0);
    // Not committed: borg rolls it back, and the committed state is the same.
    f.rebaseline('main');
  });

  test('lets stock borg create through (lz4 and zstd), and borg check is clean', async () => {
    for (const [i, comp] of ['lz4', 'zstd,3', 'none'].entries()) {
      const src = makeSourceTree(join(f.env.root, `src-${i}`), 100 + i);
      const r = await f.env.borg(KEYS.append, ['create', '-C', comp, `${f.env.url('main')}::verified-${i}`, src]);
      expect(r.code, r.stderr).toBe(0);
    }
    expect((await f.archives('main')).map((a) => a.split(' ')[0])).toEqual(['first', 'verified-0', 'verified-1', 'verified-2']);
    await f.borgOk('full', ['check', f.env.url('main')]);
    f.rebaseline('main');
  });

  test("refuses every put while borgkeep holds no key for the repository, and says how to hand it over", async () => {
    await f.env.cliOk(['repo', 'key', 'main', '--forget']);
    try {
      const txn = latestIndexTransaction(repoDir);
      const c = await f.open('append');
      const plain = randomBytes(100);
      const msgid = c.request('put', { id: idOf(plain), data: seal(plain), wait: true });
      expectDenied(await c.reply(msgid), { msgid, method: 'put', role: 'append', key: KEYS.append, repo: 'main', why: "borgkeep holds no key for the repository: an admin hands it over with 'borgkeep repo key main'" });
      await expect.poll(() => f.session(c).denials.at(-1)).toMatchObject({ reason: 'BK_DENY_OBJECT_UNVERIFIED' });
      await endUnchanged(c, txn);
      // The stock client stops with the reason, and nothing is written.
      const r = await f.env.borg(KEYS.append, ['create', `${f.env.url('main')}::unverified`, makeSourceTree(join(f.env.root, 'src-x'), 7)]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('borgkeep holds no key for the repository');
      expect(latestIndexTransaction(repoDir)).toBe(txn);
    } finally {
      const passFile = join(f.env.root, 'passphrase');
      await f.env.cliOk(['repo', 'key', 'main', '--passphrase-file', passFile]);
    }
    await f.borgOk('full', ['check', f.env.url('main')]);
  });

  test('a grant without --verify-objects forwards the same mismatched put (the check is per grant)', async () => {
    // The full key's grant has no --verify-objects: what it puts goes to borg as before.
    await f.env.cliOk(['grant', KEYS.full, 'main', '--role', 'full']);
    const c = await f.open('full');
    const msgid = c.request('put', { id: Buffer.alloc(32, 0x6b), data: stored[1].envelope, wait: true });
    expectOk(await c.reply(msgid), msgid);
    expect(await f.finish(c)).toBe(0);
    f.rebaseline('main');
  });
});

test('no reply named a server path', () => {
  f.leakCheck();
});
