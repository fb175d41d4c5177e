// Listing one folder of a huge archive from the API (issue 18, benchmark b): an archive of
// BENCH_BROWSE_FILES (1,000,000) files, one folder `big` of BENCH_BROWSE_BIG (50,000) of them, a
// folder `small` of 20, the rest in folders of 1,000 (tree/gNN/dNNNN), in a repokey repository
// built once with borg's own code (items written straight into an archive, no files on disk; every
// file's content is one shared 4 KiB chunk) and kept in $BENCH_BROWSE_DIR (default
// /tmp/borgkeep-bench-browse). Through a running `borgkeep serve` logged in as its first admin
// (`GET /api/v1/repositories/bench/archives/big/entries?path=`):
//   (a) baseline: today's path without the index (the data directory's browse-index is made a
//       plain file, so the server falls back to reading the archive's whole item stream),
//       BENCH_BROWSE_BASELINE (3) listings of `big`
//   (b) the first listing with the index: it builds the archive's folder index (cold)
//   (c) BENCH_BROWSE_LISTINGS (200) listings of `big` and (d) as many of `small`: p50, p99, max
//   (e) `borg list REPO::big big` (wall time, to /dev/null), BENCH_BROWSE_BASELINE times
// BENCH_BROWSE_FIXTURE_ONLY=1 makes the repository and stops.
// The index's answer must equal the stream's (checked once). Goal: (c)'s p99 < 300 ms.

import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { startLoggedInServe } from './lib/serve.mjs';
import { PASSPHRASE, adoptRepository, borgVersion, fmt, median, printTable, requireBuilt, run, runOk, saveResults, tempRoot } from './lib/common.mjs';

const FILES = Number(process.env.BENCH_BROWSE_FILES ?? 1_000_000);
const BIG = Number(process.env.BENCH_BROWSE_BIG ?? 50_000);
const LISTINGS = Number(process.env.BENCH_BROWSE_LISTINGS ?? 200);
const BASELINE = Number(process.env.BENCH_BROWSE_BASELINE ?? 3);
const fixture = process.env.BENCH_BROWSE_DIR ?? '/tmp/borgkeep-bench-browse';
const borgEnv = { PATH: process.env.PATH, HOME: join(fixture, 'home'), LANG: 'C.UTF-8', BORG_BASE_DIR: join(fixture, 'home'), BORG_PASSPHRASE: PASSPHRASE, BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes' };
const repo = join(fixture, 'repo');
const marker = join(fixture, `built-${FILES}x${BIG}`);

// borg's own classes: the archive's items added one by one, as `borg create` adds what it reads.
const BUILD = `
import os, stat, sys, time
from borg.repository import Repository
from borg.helpers import Manifest
from borg.cache import Cache
from borg.archive import Archive
from borg.item import Item
from borg.logger import setup_logging
setup_logging()
repo, total, big = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
small, per = 20, 1000
with Repository(repo, exclusive=True) as repository:
    manifest, key = Manifest.load(repository, (Manifest.Operation.WRITE,))
    with Cache(repository, key, manifest, warn_if_unencrypted=False) as cache:
        archive = Archive(repository, key, manifest, 'big', cache=cache, create=True)
        data = os.urandom(4096)
        cid = key.id_hash(data)
        first = [cache.add_chunk(cid, data, archive.stats)]
        t0 = int(time.time()) * 10**9
        n = [0]
        def d(path):
            archive.add_item(Item(path=path, mode=stat.S_IFDIR | 0o755, uid=1000, gid=1000, user='bench', group='bench', mtime=t0), show_progress=False)
        def f(path):
            ref = first.pop() if first else cache.chunk_incref(cid, archive.stats)
            archive.add_item(Item(path=path, mode=stat.S_IFREG | 0o644, uid=1000, gid=1000, user='bench', group='bench', mtime=t0 - n[0] * 1000, chunks=[ref], size=4096), show_progress=False)
            archive.stats.nfiles += 1
            n[0] += 1
        d('big')
        for i in range(big):
            f('big/file-%06d.dat' % i)
        d('small')
        for i in range(small):
            f('small/file-%02d.txt' % i)
        d('tree')
        rest, g = total - big - small, 0
        while rest > 0:
            d('tree/g%02d' % g)
            for j in range(50):
                if rest <= 0:
                    break
                folder = 'tree/g%02d/d%04d' % (g, j)
                d(folder)
                for i in range(min(per, rest)):
                    f('%s/file-%04d.dat' % (folder, i))
                rest -= min(per, rest)
            g += 1
        archive.save()
`;

let fixtureSeconds = null;
if (!existsSync(marker)) {
  rmSync(fixture, { recursive: true, force: true });
  mkdirSync(join(fixture, 'home'), { recursive: true });
  console.log(`building the repository: one archive of ${FILES} files (${BIG} in one folder), with borg's own code (once; kept in ${fixture})...`);
  const t0 = Date.now();
  await runOk('borg', ['init', '-e', 'repokey', repo], { env: borgEnv });
  await runOk('/usr/bin/python3', ['-c', BUILD, repo, String(FILES), String(BIG)], { env: borgEnv });
  fixtureSeconds = (Date.now() - t0) / 1000;
  writeFileSync(marker, String(fixtureSeconds));
  console.log(`built in ${fmt(fixtureSeconds, 1)} s`);
}

// BENCH_BROWSE_FIXTURE_ONLY=1: only make the repository (it needs no build of borgkeep).
if (process.env.BENCH_BROWSE_FIXTURE_ONLY === '1') process.exit(0);
requireBuilt();
const tmp = tempRoot('borgkeep-bench-browse');
const dataDir = join(tmp.dir, 'data');
await adoptRepository(dataDir, 'bench', repo, tmp.dir);
const serve = await startLoggedInServe(dataDir);
await serve.caughtUp(900_000);

const seconds = () => Number(process.hrtime.bigint()) / 1e9;
async function list(path) {
  const t0 = seconds();
  const r = await serve.call('GET', `/repositories/bench/archives/big/entries?path=${encodeURIComponent(path)}`);
  const text = await r.text();
  const s = seconds() - t0;
  if (r.status !== 200) throw new Error(`listing ${path} failed (${r.status}): ${text}`);
  return { s, text };
}
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)];
const ms = (s) => fmt(s * 1000, 1);

console.log(`${FILES} files, '${BIG}'-entry folder 'big'; ${borgVersion()}, node ${process.version}`);
const index = join(dataDir, 'browse-index');
try {
  // (a) today's path: no index can be kept, so every listing reads the item stream.
  writeFileSync(index, 'not a folder: listings read the archive as before the index\n');
  const stream = [];
  let streamText = '';
  for (let i = 0; i < BASELINE; i++) {
    const r = await list('big');
    stream.push(r.s);
    streamText = r.text;
    console.log(`  (a) without the index: ${ms(r.s)} ms`);
  }
  rmSync(index);
  // (b) the first listing builds the index.
  const cold = await list('big');
  console.log(`  (b) first listing, index built: ${ms(cold.s)} ms`);
  if (cold.text !== streamText) throw new Error("the index's listing differs from the stream's");
  const entries = JSON.parse(cold.text).entries.length;
  if (entries !== BIG) throw new Error(`'big' lists ${entries} entries, not ${BIG}`);
  const indexFiles = readdirSync(index, { recursive: true }).filter((f) => String(f).endsWith('.idx'));
  const indexBytes = indexFiles.reduce((n, f) => n + statSync(join(index, String(f))).size, 0);
  // (c), (d) warm listings, alternating.
  const bigTimes = [];
  const smallTimes = [];
  for (let i = 0; i < LISTINGS; i++) {
    bigTimes.push((await list('big')).s);
    smallTimes.push((await list('small')).s);
  }
  // (e) borg list of the folder.
  const borg = [];
  for (let i = 0; i < BASELINE; i++) {
    const t0 = seconds();
    const r = await run('sh', ['-c', 'borg list "$1" big > /dev/null', 'sh', `${repo}::big`], { env: borgEnv });
    if (r.code !== 0) throw new Error(`borg list failed: ${r.stderr}`);
    borg.push(seconds() - t0);
    console.log(`  (e) borg list REPO::big big: ${ms(borg.at(-1))} ms`);
  }
  const rows = [['listing', 'n', 'p50 ms', 'p99 ms', 'max ms']];
  const row = (label, xs) => [label, String(xs.length), ms(median(xs)), ms(pct(xs, 99)), ms(Math.max(...xs))];
  rows.push(row('(a) big, without the index', stream));
  rows.push(row('(b) big, first (index built)', [cold.s]));
  rows.push(row('(c) big, with the index', bigTimes));
  rows.push(row('(d) small, with the index', smallTimes));
  rows.push(row('(e) borg list REPO::big big', borg));
  console.log('');
  printTable(rows);
  const p99 = pct(bigTimes, 99);
  console.log(`\n'big' (${BIG} entries) with the index: p99 ${ms(p99)} ms (goal < 300 ms: ${p99 < 0.3 ? 'met' : 'NOT met'}); ` +
    `${fmt(median(stream) / median(bigTimes), 1)}x faster than without it, ${fmt(median(borg) / median(bigTimes), 1)}x faster than borg list; index ${fmt(indexBytes / 1e6, 1)} MB on disk`);
  saveResults('browse-list', {
    when: new Date().toISOString(),
    node: process.version,
    borg: borgVersion(),
    files: FILES,
    bigFolder: BIG,
    fixtureSeconds: fixtureSeconds ?? (Number(readFileSync(marker, 'utf8')) || null),
    indexBytes,
    // The 2 x BENCH_BROWSE_LISTINGS warm listings only as their p50/p99/max below.
    seconds: { withoutIndex: stream, firstWithIndex: cold.s, borgList: borg },
    milliseconds: {
      withoutIndexMedian: median(stream) * 1000,
      coldBuild: cold.s * 1000,
      big: { p50: median(bigTimes) * 1000, p99: p99 * 1000, max: Math.max(...bigTimes) * 1000 },
      small: { p50: median(smallTimes) * 1000, p99: pct(smallTimes, 99) * 1000, max: Math.max(...smallTimes) * 1000 },
      borgListMedian: median(borg) * 1000,
    },
    ratios: { withoutIndexToIndex: median(stream) / median(bigTimes), borgListToIndex: median(borg) / median(bigTimes) },
    goalP99Ms: 300,
  });
} finally {
  await serve.stop();
  tmp.cleanup();
}
