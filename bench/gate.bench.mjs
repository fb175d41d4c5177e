// How long the compaction gate's decision takes at the moment a session asks to compact
// (src/guard/compaction-check.ts: read the history on disk through the audit cache, the ledger's
// attributions and the events, decide; the manifests are kept only when it allows), on a
// repository of BENCH_GATE_TXNS (500) transactions, none covered by an earlier verification, so
// every one is judged. The baseline, in the same run: `borg list --short` of the same repository
// (what any client's session costs anyway: start, open, manifest, list).
//   cold: the first decision, the audit cache empty (every segment's entry headers read)
//   warm: later decisions, segments unchanged since come from the cache (what a routine
//         `borg compact` meets: the last audit or decision read everything before)
//   key:  a warm decision with the repository key held (issue 14's automatic gate): the full
//         audit of every uncovered transaction, all BENCH_GATE_TXNS manifests decrypted and
//         judged; the worst case (none covered, none judged at its commit by the live guard)
// The repository is built once with borg's own code and kept in $BENCH_GATE_DIR
// (/tmp/borgkeep-bench-gate). Goal (issue 13): well under a second.

import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { PASSPHRASE, ROOT, fmt, median, printTable, requireBuilt, runOk, saveResults, tempRoot } from './lib/common.mjs';

requireBuilt();
const TXNS = Number(process.env.BENCH_GATE_TXNS ?? 500);
const ROUNDS = Number(process.env.BENCH_RUNS ?? 5);
const fixture = process.env.BENCH_GATE_DIR ?? '/tmp/borgkeep-bench-gate';
const BUILD = `
import os, sys
from borg.archiver import Archiver
repo, src, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(n):
    d = os.path.join(src, str(i))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, 'f'), 'wb') as f:
        f.write(os.urandom(4096))
    a = Archiver()
    rc = a.run(a.get_args(['borg', 'create', repo + '::a' + str(i), d], None))
    if rc not in (0, None):
        sys.exit('borg create %d failed: %s' % (i, rc))
`;
const borgEnv = { PATH: process.env.PATH, HOME: join(fixture, 'home'), LANG: 'C.UTF-8', BORG_BASE_DIR: join(fixture, 'home'), BORG_PASSPHRASE: PASSPHRASE, BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes' };
const repo = join(fixture, 'repo');
const marker = join(fixture, `built-${TXNS}`);
if (!existsSync(marker)) {
  rmSync(fixture, { recursive: true, force: true });
  mkdirSync(join(fixture, 'home'), { recursive: true });
  console.log(`building the repository: ${TXNS} archives with borg's own code (once; kept in ${fixture})...`);
  await runOk('borg', ['init', '-e', 'repokey', repo], { env: borgEnv });
  await runOk('/usr/bin/python3', ['-c', BUILD, repo, join(fixture, 'src'), String(TXNS)], { env: borgEnv });
  rmSync(join(fixture, 'src'), { recursive: true, force: true });
  writeFileSync(marker, '');
}

const { checkCompaction } = await import(join(ROOT, 'dist', 'guard', 'compaction-check.js'));
const { readHistory } = await import(join(ROOT, 'dist', 'audit', 'history.js'));
const history = await readHistory(repo);
// Every transaction attributed to a session of its own, as the ledger would have them.
const attributions = history.transactions.map((t, i) => ({ borgTransactionId: t.id, sessionId: i + 1, keyName: 'laptop', role: 'append', at: new Date() }));
const store = { listEvents: async () => [], listCommittedTransactions: async () => attributions };
const repository = { id: 1, name: 'bench', dirName: 'bench', quotaBytes: null, expectedIntervalSeconds: 86400, createdAt: new Date() };
const tmp = tempRoot('borgkeep-bench-gate');
const pending = { sessionId: 0, deletedOlder: 0, overwritten: 0 };
const { unlockKey } = await import(join(ROOT, 'dist', 'repository', 'borg-key.js'));
const { parseRepoConfig } = await import(join(ROOT, 'dist', 'repository', 'repo-config.js'));
const { readFileSync } = await import('node:fs');
const config = parseRepoConfig(readFileSync(join(repo, 'config'), 'utf8'));
const key = unlockKey(config.key, PASSPHRASE, config.id);
const decide = async (withKey = false) => {
  const t0 = process.hrtime.bigint();
  const c = await checkCompaction({ store, dataDir: tmp.dir, ...(withKey && { repositoryKey: () => key }) }, repository, repo, pending);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (!c.decision.allow || c.decision.structurallyVerified < TXNS) throw new Error(`unexpected decision: ${c.why}`);
  if (withKey && !c.verifiedWithKey) throw new Error('the decision with the key did not audit');
  return seconds;
};
const series = { baseline: [], cold: [], warm: [], key: [] };
for (let i = 0; i < ROUNDS; i++) {
  rmSync(join(tmp.dir, 'cache'), { recursive: true, force: true });
  series.cold.push(await decide());
  series.warm.push(await decide());
  series.key.push(await decide(true));
  const t0 = process.hrtime.bigint();
  await runOk('borg', ['list', '--short', repo], { env: borgEnv });
  series.baseline.push(Number(process.hrtime.bigint() - t0) / 1e9);
}
const m = Object.fromEntries(Object.entries(series).map(([k, v]) => [k, median(v)]));
printTable([
  ['', 'median s', 'rounds', 'vs borg list'],
  ['borg list --short (baseline)', fmt(m.baseline), series.baseline.map((x) => fmt(x)).join(' '), '1.00'],
  [`gate decision, cold cache (${history.transactions.length} txns)`, fmt(m.cold), series.cold.map((x) => fmt(x)).join(' '), fmt(m.cold / m.baseline)],
  ['gate decision, warm cache', fmt(m.warm), series.warm.map((x) => fmt(x)).join(' '), fmt(m.warm / m.baseline)],
  [`gate decision with the key held (${history.transactions.length} manifests audited)`, fmt(m.key), series.key.map((x) => fmt(x)).join(' '), fmt(m.key / m.baseline)],
]);
saveResults('gate', { transactions: history.transactions.length, medians: m, series });
