// What `--verify-objects` costs per byte (src/archive/verify-object.ts): over the puts of a real
// `borg create`, in-process, the check alone (TYPE byte, MAC, AES-CTR, decompression, the id
// recomputed), in MB/s of plaintext per core (plaintext bytes / CPU seconds of this process).
// The check runs in the native checker (native/objcheck.c) where it was built; the same check in
// JavaScript alone (what runs without it) is measured beside it. Baselines in the same run, same
// bytes: HMAC-SHA256 of the plaintext alone (the id hash, the least any verification does) and
// a plain copy of it. Goal (issue 14): >= 400 MB/s per core for
// `none` and `lz4` compression; zstd is measured and explained.
//
// The streams: one repository per encryption (repokey: AES-CTR + HMAC-SHA256; repokey-blake2)
// and source, each made by the real borg 1.2 client with `borg create` of BENCH_VERIFY_BYTES, its
// PUTs read back from the segments (what borg serve stores is byte for byte what the client's
// put carried):
//   random -C lz4    fresh random data, as borg-create.bench.mjs sends: borg stores what does not
//                    compress with the `none` header whatever -C says, so this is the none path
//   files -C none, lz4, zstd,3   the first BENCH_VERIFY_BYTES of /usr/share then /usr/lib (real
//                    text and binaries; lz4 about 2:1), so the lz4 and zstd decoders do run
// Built once, kept in BENCH_VERIFY_DIR (/tmp/borgkeep-bench-verify).

import { copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createDecipheriv, createHmac } from 'node:crypto';
import { join } from 'node:path';

import { MiB, PASSPHRASE, ROOT, borgVersion, fmt, median, printTable, requireBuilt, runOk, saveResults, writeRandomTree } from './lib/common.mjs';

requireBuilt();
const ROUNDS = Number(process.env.BENCH_RUNS ?? 5);
const BYTES = Number(process.env.BENCH_VERIFY_BYTES ?? 256 * MiB);
const fixture = process.env.BENCH_VERIFY_DIR ?? '/tmp/borgkeep-bench-verify';
const ENCRYPTIONS = (process.env.BENCH_VERIFY_ENCRYPTIONS ?? 'repokey,repokey-blake2').split(',');
const STREAMS = [
  ['random', 'lz4'],
  ['files', 'none'],
  ['files', 'lz4'],
  ['files', 'zstd,3'],
];

const dist = (p) => join(ROOT, 'dist', p);
const { createObjectVerifier } = await import(dist('archive/verify-object.js'));
const { objcheck } = await import(dist('native/objcheck.js'));
const { createBlake2b256, isBlake2, objectMode, openObject, unlockKey } = await import(dist('repository/borg-key.js'));
const { parseRepoConfig } = await import(dist('repository/repo-config.js'));
const { listSegments, readSegment } = await import(dist('repository/segments.js'));
const { MANIFEST_ID } = await import(dist('repository/manifest.js'));

const home = join(fixture, 'home');
const borgEnv = { PATH: process.env.PATH, HOME: home, LANG: 'C.UTF-8', BORG_BASE_DIR: home, BORG_PASSPHRASE: PASSPHRASE, BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes' };
const repoName = (enc, source, comp) => `${enc}-${source}-${comp.replace(/,.*/, '')}`;

/** Copies regular files of `roots` (in name order, each at most 32 MiB) into `dir` until `bytes`. */
function copySystemFiles(dir, bytes, roots = ['/usr/share', '/usr/lib']) {
  mkdirSync(dir, { recursive: true });
  let total = 0;
  let n = 0;
  const walk = (d) => {
    let names;
    try {
      names = readdirSync(d).sort();
    } catch {
      return;
    }
    for (const name of names) {
      if (total >= bytes) return;
      const p = join(d, name);
      let st;
      try {
        st = lstatSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(p);
      else if (st.isFile() && st.size > 0 && st.size <= 32 * MiB) {
        try {
          copyFileSync(p, join(dir, String(n++).padStart(7, '0')));
          total += st.size;
        } catch {
          // unreadable: skip
        }
      }
    }
  };
  for (const r of roots) walk(r);
  return total;
}

const marker = join(fixture, `built-${BYTES}-${ENCRYPTIONS.join('+')}`);
if (!existsSync(marker)) {
  rmSync(fixture, { recursive: true, force: true });
  mkdirSync(home, { recursive: true });
  const sources = { random: join(fixture, 'src-random'), files: join(fixture, 'src-files') };
  writeRandomTree(sources.random, BYTES);
  const copied = copySystemFiles(sources.files, BYTES);
  console.log(`building ${ENCRYPTIONS.length * STREAMS.length} repositories with borg create (random ${BYTES / MiB} MiB, files ${fmt(copied / MiB, 0)} MiB; once, kept in ${fixture})...`);
  for (const enc of ENCRYPTIONS) {
    for (const [source, comp] of STREAMS) {
      const repo = join(fixture, repoName(enc, source, comp));
      await runOk('borg', ['init', '-e', enc, repo], { env: borgEnv });
      await runOk('borg', ['create', '-C', comp, `${repo}::a`, '.'], { env: borgEnv, cwd: sources[source] });
    }
  }
  for (const d of Object.values(sources)) rmSync(d, { recursive: true, force: true });
  writeFileSync(marker, '');
}

/** The recorded puts of one repository, with its verifier and every object's plaintext. */
async function load(enc, source, comp) {
  const repo = join(fixture, repoName(enc, source, comp));
  const puts = [];
  for (const file of listSegments(repo)) {
    for (const e of (await readSegment(file, () => true)).entries) if (e.tag === 'put' && e.data) puts.push({ id: e.id, envelope: e.data });
  }
  const config = parseRepoConfig(readFileSync(join(repo, 'config'), 'utf8'));
  const mode = objectMode(puts.find((p) => p.id.equals(MANIFEST_ID)).envelope);
  const key = unlockKey(config.key, PASSPHRASE, config.id);
  const plains = [];
  let stored = 0;
  for (const p of puts) {
    plains.push(await openObject(p.envelope, mode, key));
    stored += p.envelope.length;
  }
  const plainBytes = plains.reduce((s, b) => s + b.length, 0);
  return {
    puts,
    plains,
    plainBytes,
    stored,
    mode,
    key,
    verifier: await createObjectVerifier(mode, key),
    jsVerifier: await createObjectVerifier(mode, key, { useNative: false }),
  };
}

/**
 * The objects' cryptography alone, as node:crypto (and hash-wasm for BLAKE2b) does it, one object
 * at a time: the MAC over IV and ciphertext, AES-CTR decryption, the id hash of the plaintext.
 * What a check of every object cannot go below with this stack.
 */
const SLICE = 64 * 1024;

function cryptoFloor(s) {
  const { puts, plains, key, mode } = s;
  const iv = Buffer.alloc(16);
  const blake2 = isBlake2(mode);
  let macHasher = null;
  let idHasher = null;
  const ready = blake2 ? Promise.all([createBlake2b256(), createBlake2b256()]).then(([a, b]) => ((macHasher = a), (idHasher = b))) : null;
  const blake = (h, k, data) => {
    h.init();
    h.update(k);
    h.update(data);
    return h.digest('binary');
  };
  const f = () => {
    for (let i = 0; i < puts.length; i++) {
      const env = puts[i].envelope;
      if (blake2) blake(macHasher, key.encHmacKey, env.subarray(33));
      else createHmac('sha256', key.encHmacKey).update(env.subarray(33)).digest();
      iv.set(env.subarray(33, 41), 8);
      // In 64 KiB slices, as the verifier decrypts: one output of a 2 MiB object's size costs
      // more in fresh pages than the decryption itself.
      const decipher = createDecipheriv('aes-256-ctr', key.encKey, iv);
      for (let at = 41; at < env.length; at += SLICE) decipher.update(env.subarray(at, at + SLICE));
      if (blake2) blake(idHasher, key.idKey, plains[i]);
      else createHmac('sha256', key.idKey).update(plains[i]).digest();
    }
  };
  f.ready = ready;
  return f;
}

/** CPU seconds (user + system of this process) and wall seconds of f(). */
function measure(f) {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  f();
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  return { cpu: (c.user + c.system) / 1e6, wall };
}

const results = {};
const rows = [['stream', 'objects', 'plain MiB', 'ratio', 'verify MB/s/core', 'JS verify', 'HMAC MB/s/core', 'copy MB/s/core', 'crypto floor MB/s/core', 'verify/HMAC', 'verify/floor', 'goal']];
for (const enc of ENCRYPTIONS) {
  for (const [source, comp] of STREAMS) {
    const s = await load(enc, source, comp);
    const { verifier, jsVerifier, puts, plains } = s;
    const verifyAll = (v) => () => {
      for (const p of puts) {
        const r = v.verify(p.id, p.envelope);
        if (r !== null) throw new Error(`an object borg wrote was refused: ${r.why ?? 'asynchronously decoded'}`);
      }
    };
    const runs = {
      verify: verifyAll(verifier),
      // The same check in JavaScript alone, what runs where the native checker was not built.
      js: verifyAll(jsVerifier),
      hmac: () => {
        for (const b of plains) createHmac('sha256', s.key.idKey).update(b).digest();
      },
      copy: () => {
        for (const b of plains) Buffer.from(b);
      },
      // The floor of node:crypto for these objects: the MAC over IV and ciphertext, AES-CTR, the
      // id hash of the plaintext, and nothing else (no checks, no decompression).
      crypto: cryptoFloor(s),
    };
    await runs.crypto.ready;
    runs.verify(); // warm-up, and every object passes
    runs.js();
    const series = { verify: [], js: [], hmac: [], copy: [], crypto: [] };
    const names = Object.keys(runs);
    for (let r = 0; r < ROUNDS; r++) {
      // Rotate the order, so that no one of them always runs on a warm or a cold machine.
      for (let i = 0; i < names.length; i++) {
        const name = names[(i + r) % names.length];
        const m = measure(runs[name]);
        series[name].push(s.plainBytes / 1e6 / m.cpu);
      }
    }
    const m = Object.fromEntries(Object.entries(series).map(([k, v]) => [k, median(v)]));
    const label = `${enc} ${source} -C ${comp}`;
    const goal = comp === 'none' || comp === 'lz4' ? (m.verify >= 400 ? 'met' : 'NOT met') : '-';
    rows.push([label, puts.length, fmt(s.plainBytes / MiB, 0), fmt(s.plainBytes / s.stored), fmt(m.verify, 0), fmt(m.js, 0), fmt(m.hmac, 0), fmt(m.copy, 0), fmt(m.crypto, 0), fmt(m.verify / m.hmac), fmt(m.verify / m.crypto), goal]);
    results[label] = { objects: puts.length, plainBytes: s.plainBytes, storedBytes: s.stored, mode: s.mode, medians: m, series, goal };
  }
}
console.log(
  `--verify-objects over recorded puts, MB/s of plaintext per CPU second, medians of ${ROUNDS} rounds (${borgVersion() ?? 'borg ?'}, node ${process.versions.node}; verify: ${objcheck() ? 'the native checker' : 'JavaScript: the native checker is not built'})`,
);
printTable(rows);
saveResults('verify-objects', { rounds: ROUNDS, sourceBytes: BYTES, native: objcheck() !== null, results });
