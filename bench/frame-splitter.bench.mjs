// How fast the guard's per-frame work is on a real backup stream, against a floor in the same run.
//
// 1. Records what a borg 1.2 client sends during a real `borg create` of 1 GiB of fresh random
//    data (--compression none, repokey): a BORG_RSH script tees the client's bytes into a file
//    on their way to a plain `borg serve`. The committed index of the repository as the session
//    found it (right after `borg init`) is kept beside it. Both stay in $BENCH_STREAM_DIR
//    (default /tmp/borgkeep-bench-stream) and are reused while their sizes match; they never go
//    into the repository. BENCH_CLEAN=1 removes them at the end.
// 2. Replays the stream in 64 KiB chunks (what a pipe hands to a read) through
//    createFrameSplitter(SERVER_LIMITS) + parseRequest + decideCall, with an `append` context
//    whose existsCommitted is a real CommittedIndex lookup (pread on index.N) and whose
//    putBySession is the guard's IdSet. Baselines over the same chunks in the same run:
//    summing their lengths (loop floor) and copying each chunk once (memory-bandwidth floor:
//    the splitter has to join a put's chunks into one frame, so it cannot do less).
// 5 runs (BENCH_RUNS), medians.

import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  GiB,
  MiB,
  ROOT,
  borgClientEnv,
  borgVersion,
  fmt,
  median,
  printTable,
  requireBuilt,
  runOk,
  saveResults,
  syncDisks,
  tempRoot,
  writePlainRsh,
  writeRandomTree,
} from './lib/common.mjs';

requireBuilt();
const { createFrameSplitter } = await import(join(ROOT, 'dist/rpc/frame-splitter.js'));
const { SERVER_LIMITS } = await import(join(ROOT, 'dist/rpc/msgpack.js'));
const { parseRequest } = await import(join(ROOT, 'dist/rpc/messages.js'));
const { decideCall } = await import(join(ROOT, 'dist/guard/grant-policy.js'));
const { openCommittedIndex, latestIndexTransaction } = await import(join(ROOT, 'dist/repository/hash-index.js'));
const { createIdSet } = await import(join(ROOT, 'dist/guard/id-set.js'));

const SOURCE_BYTES = Number(process.env.BENCH_SOURCE_BYTES ?? GiB);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const CHUNK = 64 * 1024;
const STREAM_DIR = process.env.BENCH_STREAM_DIR ?? join(tmpdir(), 'borgkeep-bench-stream');
const STREAM = join(STREAM_DIR, 'client-to-server.bin');
const META = join(STREAM_DIR, 'meta.json');

function recordedStream() {
  if (!existsSync(META) || !existsSync(STREAM)) return null;
  try {
    const meta = JSON.parse(readFileSync(META, 'utf8'));
    const ok =
      meta.sourceBytes === SOURCE_BYTES &&
      statSync(STREAM).size === meta.streamBytes &&
      existsSync(join(STREAM_DIR, `index.${meta.indexTransaction}`));
    return ok ? meta : null;
  } catch {
    return null;
  }
}

async function recordStream() {
  console.log(`recording: borg create of ${SOURCE_BYTES / MiB} MiB of fresh random data through a tee into ${STREAM}`);
  rmSync(STREAM_DIR, { recursive: true, force: true });
  mkdirSync(STREAM_DIR, { recursive: true });
  const tmp = tempRoot('borgkeep-bench-record');
  try {
    const src = writeRandomTree(join(tmp.dir, 'src'), SOURCE_BYTES);
    const repo = join(tmp.dir, 'repo');
    const rsh = writePlainRsh(tmp.dir);
    const url = `ssh://bench${repo}`;
    const env = borgClientEnv(join(tmp.dir, 'client'), rsh, { BENCH_REPO: repo });
    syncDisks();
    await runOk('borg', ['init', '-e', 'repokey', url], { env });
    // What the guard would look objects up in: the index as the session found it.
    const indexTransaction = latestIndexTransaction(repo);
    if (indexTransaction === null) throw new Error('borg init left no index');
    copyFileSync(join(repo, `index.${indexTransaction}`), join(STREAM_DIR, `index.${indexTransaction}`));
    const partial = `${STREAM}.partial`;
    await runOk('borg', ['create', '--compression', 'none', `${url}::recorded`, src], {
      env: { ...env, BENCH_RECORD: partial, BENCH_APPEND_ONLY: '1' },
    });
    renameSync(partial, STREAM);
    const meta = {
      sourceBytes: SOURCE_BYTES,
      streamBytes: statSync(STREAM).size,
      indexTransaction,
      borg: borgVersion(),
      command: 'borg create --compression none (repokey), 64 MiB files of random data',
      recordedAt: new Date().toISOString(),
    };
    writeFileSync(META, JSON.stringify(meta, null, 2) + '\n');
    return meta;
  } catch (e) {
    rmSync(STREAM_DIR, { recursive: true, force: true });
    throw e;
  } finally {
    tmp.cleanup();
  }
}

/** The stream as a pipe delivers it: separate buffers of at most 64 KiB. */
function loadChunks(total) {
  const chunks = [];
  const fd = openSync(STREAM, 'r');
  try {
    for (let pos = 0; pos < total; ) {
      const b = Buffer.allocUnsafeSlow(Math.min(CHUNK, total - pos));
      const n = readSync(fd, b, 0, b.length, pos);
      if (n !== b.length) throw new Error('short read of the recorded stream');
      chunks.push(b);
      pos += n;
    }
  } finally {
    closeSync(fd);
  }
  return chunks;
}

function sumLengths(chunks) {
  let n = 0;
  for (const c of chunks) n += c.length;
  return n;
}

function copyOnce(chunks, scratch) {
  let off = 0;
  for (const c of chunks) {
    if (off + c.length > scratch.length) off = 0;
    off += c.copy(scratch, off);
  }
  return off;
}

function guardPass(chunks, index) {
  const splitter = createFrameSplitter(SERVER_LIMITS);
  const sessionPuts = createIdSet();
  // The repository's nonce file as the guard would read it: where the recorded stream's first
  // reservation starts (borg init wrote it), then wherever each allowed reservation moved it.
  let nonce;
  const ctx = {
    role: 'append',
    unlocked: false,
    justCreated: false,
    existsCommitted: (id) => index.lookup(id) !== undefined,
    putBySession: (id) => sessionPuts.has(id),
    currentNonce: () => nonce ?? null,
  };
  let frames = 0;
  let allowed = 0;
  const denied = {};
  for (const chunk of chunks) {
    for (const frame of splitter.push(chunk)) {
      frames++;
      const req = parseRequest(frame);
      if (req.method === 'negotiate' || req.method === 'open') continue; // the guard's own handling
      if (req.method === 'commit_nonce_reservation' && nonce === undefined) {
        const start = req.args.get('start_nonce');
        nonce = start === null || start === undefined ? null : BigInt(start);
      }
      const d = decideCall(req, ctx);
      if (!d.allow) denied[`${req.method} ${d.reason}`] = (denied[`${req.method} ${d.reason}`] ?? 0) + 1;
      else {
        allowed++;
        if (req.method === 'put') sessionPuts.add(req.args.get('id'));
        if (req.method === 'commit_nonce_reservation') nonce = BigInt(req.args.get('next_unreserved'));
      }
    }
  }
  if (splitter.pendingBytes !== 0) throw new Error(`${splitter.pendingBytes} bytes left after the last frame`);
  return { frames, allowed, denied };
}

function time(fn) {
  globalThis.gc?.();
  const t0 = process.hrtime.bigint();
  const result = fn();
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, result };
}

const meta = recordedStream() ?? (await recordStream());
if (meta.streamBytes < 1e9 && SOURCE_BYTES >= GiB) throw new Error(`the recorded stream has only ${meta.streamBytes} bytes`);
console.log(`stream: ${STREAM} (${meta.streamBytes} bytes, ${meta.borg}), index.${meta.indexTransaction} of the fresh repository`);
const chunks = loadChunks(meta.streamBytes);
const index = openCommittedIndex(STREAM_DIR, meta.indexTransaction);
const scratch = Buffer.alloc(4 * MiB);
const MB = meta.streamBytes / 1e6;

// One untimed pass each, so the first timed run is not paying for JIT warm-up.
sumLengths(chunks);
copyOnce(chunks, scratch);
const warm = guardPass(chunks, index);
console.log(`frames: ${warm.frames}, allowed calls: ${warm.allowed}, denied: ${JSON.stringify(warm.denied)}`);
if (Object.keys(warm.denied).length > 0) throw new Error('the policy denied calls of a plain backup with an append key');

const runs = [];
for (let i = 0; i < RUNS; i++) {
  const sum = time(() => sumLengths(chunks));
  const copy = time(() => copyOnce(chunks, scratch));
  const guard = time(() => guardPass(chunks, index));
  if (sum.result !== meta.streamBytes) throw new Error('chunks do not add up to the stream');
  runs.push({
    sumMs: sum.ms,
    copyMs: copy.ms,
    guardMs: guard.ms,
    copyMBps: MB / (copy.ms / 1000),
    guardMBps: MB / (guard.ms / 1000),
    framesPerSec: guard.result.frames / (guard.ms / 1000),
    guardOverCopy: guard.ms / copy.ms,
  });
}
index.close();

const med = Object.fromEntries(Object.keys(runs[0]).map((k) => [k, median(runs.map((r) => r[k]))]));
const rows = [['run', 'sum-lengths ms', 'copy ms', 'copy MB/s', 'guard ms', 'guard MB/s', 'frames/s', 'guard/copy']];
const row = (name, r) => [name, fmt(r.sumMs, 3), fmt(r.copyMs, 1), fmt(r.copyMBps, 0), fmt(r.guardMs, 1), fmt(r.guardMBps, 0), fmt(r.framesPerSec, 0), fmt(r.guardOverCopy)];
runs.forEach((r, i) => rows.push(row(String(i + 1), r)));
rows.push(row('median', med));
console.log(`\nframe splitter + parseRequest + decideCall(append), ${chunks.length} chunks of ${CHUNK / 1024} KiB, ${warm.frames} frames:`);
printTable(rows);
console.log(
  `\nmedian: ${fmt(med.guardMBps, 0)} MB/s, ${fmt(med.framesPerSec, 0)} frames/s; ` +
    `${fmt(med.guardOverCopy)}x the time of one copy of the stream (${fmt(med.copyMBps, 0)} MB/s); summing lengths alone: ${fmt(med.sumMs, 3)} ms`,
);

saveResults('frameSplitter', {
  when: new Date().toISOString(),
  node: process.version,
  borg: meta.borg,
  stream: { bytes: meta.streamBytes, chunks: chunks.length, chunkBytes: CHUNK, frames: warm.frames, recorded: meta.command },
  runs,
  median: med,
});

if (process.env.BENCH_CLEAN === '1') rmSync(STREAM_DIR, { recursive: true, force: true });
