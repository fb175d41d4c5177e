// The archive rules' check of one manifest put (src/guard/archive-rules.ts) on a repository of
// BENCH_MANIFEST_ARCHIVES (10,000) archives, in-process, with the built modules: what the guard
// does at the commit of a backup (the committed manifest decrypted and parsed, which a session
// does once, at its first manifest put; the put decrypted, its TAM checked, judged against the
// committed list by judgeManifestChange with the append rules) and of a prune under a retention
// rule (--min-age, --keep-last, which decode the whole list and sort it by the server's
// sightings). Baseline in the same run: decrypting the put's envelope alone (what any reading of
// the manifest costs). Goal (issue 14): the check adds at most 50 ms to a commit. The key is
// random and the manifests are built here; reading the committed manifest's 1 MB from the page
// cache is not included (a pread).

import { createCipheriv, createHmac, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { ROOT, fmt, median, printTable, requireBuilt, saveResults } from './lib/common.mjs';

requireBuilt();
const load = (p) => import(pathToFileURL(join(ROOT, 'dist', p)).href);
const { MsgMap, encode } = await load('rpc/msgpack.js');
const { openObject } = await load('repository/borg-key.js');
const { parseManifest } = await load('repository/manifest.js');
const { judgeManifestChange } = await load('archive/manifest-change.js');

const ARCHIVES = Number(process.env.BENCH_MANIFEST_ARCHIVES ?? 10_000);
const ROUNDS = Number(process.env.BENCH_RUNS ?? 30);
const GOAL_MS = 50;

const key = { repositoryId: randomBytes(32), encKey: randomBytes(32), encHmacKey: randomBytes(32), idKey: randomBytes(32), tamRequired: true };

function hkdfSha512(ikm, salt, info) {
  const prk = createHmac('sha512', salt).update(ikm).digest();
  return createHmac('sha512', prk).update(Buffer.concat([info, Buffer.from([1])])).digest();
}

const day = (i) => new Date(Date.UTC(2026, 0, 1) + i * 3_600_000).toISOString().replace('Z', '000');
const entries = Array.from({ length: ARCHIVES }, (_, i) => [`host-${String(i).padStart(6, '0')}`, MsgMap.of([['id', randomBytes(32)], ['time', Buffer.from(day(i))]])]);

/** A manifest as borg 1.2 writes it, TAM-signed and encrypted as a repokey object. */
function manifestEnvelope(list, timestamp, iv) {
  const salt = randomBytes(64);
  const tam = MsgMap.of([['hmac', Buffer.alloc(64)], ['salt', salt], ['type', Buffer.from('HKDF_HMAC_SHA512')]]);
  const m = MsgMap.of([
    ['archives', MsgMap.of(list)],
    ['config', MsgMap.of([])],
    ['item_keys', ['acl_access', 'chunks', 'mode', 'path', 'user'].map((k) => Buffer.from(k))],
    ['tam', tam],
    ['timestamp', Buffer.from(timestamp)],
    ['version', 1],
  ]);
  const tamKey = hkdfSha512(Buffer.concat([key.idKey, key.encKey, key.encHmacKey]), salt, Buffer.from('borg-metadata-authentication-manifest'));
  tam.entries[0][1] = createHmac('sha512', tamKey).update(encode(m)).digest();
  const plain = encode(m);
  const iv8 = Buffer.alloc(8);
  iv8.writeBigUInt64BE(iv);
  const cipher = createCipheriv('aes-256-ctr', key.encKey, Buffer.concat([Buffer.alloc(8), iv8]));
  const ct = Buffer.concat([cipher.update(Buffer.concat([Buffer.from([0, 0]), plain])), cipher.final()]);
  const mac = createHmac('sha256', key.encHmacKey).update(Buffer.concat([iv8, ct])).digest();
  return Buffer.concat([Buffer.from([0x03]), mac, iv8, ct]);
}

const now = new Date(Date.UTC(2027, 0, 1));
const committedEnvelope = manifestEnvelope(entries, '2026-12-31T23:00:00.000000', 1000n);
// A backup adds one archive (its own); a prune removes the three oldest.
const newId = randomBytes(32);
const backupEnvelope = manifestEnvelope([...entries, ['host-new', MsgMap.of([['id', newId], ['time', Buffer.from('2026-12-31T23:30:00.000000')]])]], '2026-12-31T23:59:00.000000', 1_000_000n);
const pruneEnvelope = manifestEnvelope(entries.slice(3), '2026-12-31T23:59:00.000000', 2_000_000n);
const sightings = new Map(entries.map(([name, e], i) => [`${e.get('id').toString('hex')} ${name}`, new Date(Date.UTC(2026, 0, 1) + i * 3_600_000)]));
const newHex = newId.toString('hex');

const ms = (f) => async () => {
  const t = process.hrtime.bigint();
  await f();
  return Number(process.hrtime.bigint() - t) / 1e6;
};
const decryptOnly = ms(() => openObject(backupEnvelope, 'repokey', key));
async function check(envelope, role) {
  const committed = parseManifest(await openObject(committedEnvelope, 'repokey', key), key, true);
  const next = parseManifest(await openObject(envelope, 'repokey', key), key, true);
  const j = judgeManifestChange({
    previous: committed,
    next,
    role,
    serverTime: now,
    tamRequired: true,
    ...(role === 'append' && { writtenByWriter: (id) => id === newHex }),
    ...(role === 'prune' && { retention: { rule: { minAgeSeconds: 30 * 86_400, keepLast: 7, prefix: 'host-' }, now, firstSeen: (a) => sightings.get(`${a.id} ${a.name}`) ?? null } }),
  });
  if (j.suspicious) throw new Error(`the benchmark's manifest was judged suspicious: ${j.findings[0].message}`);
}
const backupCheck = ms(() => check(backupEnvelope, 'append'));
const pruneCheck = ms(() => check(pruneEnvelope, 'prune'));

// Warm-up: the first calls compile the code paths.
for (let i = 0; i < 3; i++) {
  await decryptOnly();
  await backupCheck();
  await pruneCheck();
}
const a = [];
const b = [];
const p = [];
for (let i = 0; i < ROUNDS; i++) {
  a.push(await decryptOnly());
  b.push(await backupCheck());
  p.push(await pruneCheck());
}
const res = {
  archives: ARCHIVES,
  manifestBytes: committedEnvelope.length,
  decryptMs: median(a),
  backupCheckMs: median(b),
  pruneCheckMs: median(p),
  goalMs: GOAL_MS,
};
printTable([
  ['measure', `median of ${ROUNDS} (ms)`, 'ratio to (a)'],
  ['(a) decrypt the put alone (baseline)', fmt(res.decryptMs), '1.00'],
  ['(b) append commit: committed + put decrypted, TAM, judged', fmt(res.backupCheckMs), fmt(res.backupCheckMs / res.decryptMs)],
  ['(c) prune commit with --min-age 30d --keep-last 7', fmt(res.pruneCheckMs), fmt(res.pruneCheckMs / res.decryptMs)],
]);
console.log(`${ARCHIVES} archives, manifest ${(res.manifestBytes / 1e6).toFixed(2)} MB; goal: the check adds ≤ ${GOAL_MS} ms: ${Math.max(res.backupCheckMs, res.pruneCheckMs) <= GOAL_MS ? 'met' : 'NOT met'}`);
saveResults('manifest-check', res);
