import { createHash } from 'node:crypto';
import { expect, test } from 'vitest';

import { MsgMap, encode } from '../rpc/msgpack.js';
import { parseManifest, type Manifest } from '../repository/manifest.js';
import type { Role } from '../store/types.js';
import { auditHistory, type Attribution, type ManifestReading } from './audit.js';
import type { RepositoryHistory, TxnHistory } from './history.js';

// auditHistory's part of the manifest judgement (src/archive/manifest-change.ts has the rules):
// which server time and role each transaction is judged with, the baseline after a compaction,
// ids listed earlier in the history, and the sightings it reports.

const idFor = (s: string) => createHash('sha256').update(s).digest();
let tick = 0;
function manifest(archives: Array<[name: string, id: string, time: string]>): Manifest {
  const entries = archives.map(([name, id, time]): [string, MsgMap] => [name, MsgMap.of([['id', idFor(id)], ['time', Buffer.from(time)]])]);
  const ts = `2026-11-23T10:00:00.${String(++tick).padStart(6, '0')}`;
  const plain = encode(MsgMap.of([['archives', MsgMap.of(entries)], ['config', MsgMap.of([])], ['timestamp', Buffer.from(ts)], ['version', 1]]));
  return { ...parseManifest(plain, null, false), tam: 'ok' };
}
const txn = (id: number, time: string | null = null): TxnHistory => ({
  id,
  objectsPut: 1,
  objectsOverwritten: 0,
  deletedOlder: 0,
  deletedOwn: 0,
  deletedUnknown: 0,
  deletedOlderFrom: [],
  manifestPuts: 1,
  manifest: { segment: id, offset: 8, size: 100 },
  time,
});
const history = (txns: TxnHistory[], compactedBefore: number | null): RepositoryHistory => ({
  transactions: txns,
  uncommittedSegments: [],
  problems: [],
  tailProblems: [],
  compactedBefore,
  readManifest: () => Promise.reject(new Error('not read here')),
});
const who = (id: number, role: Role, at: string): Attribution => ({ borgTransactionId: id, sessionId: id, keyName: role, role, at: new Date(at) });

test("an archive's time is judged against the ledger's commit time, else the transactions log's; sightings carry that time", () => {
  const old = '2026-01-01T00:00:00.000000';
  const m1 = manifest([['a', 'a', '2026-11-23T09:00:00.000000']]);
  const m2 = manifest([['a', 'a', '2026-11-23T09:00:00.000000'], ['b', 'b', old]]);
  const m3 = manifest([['a', 'a', '2026-11-23T09:00:00.000000'], ['b', 'b', old], ['c', 'c', old]]);
  const manifests = new Map<number, ManifestReading>([
    [1, { manifest: m1 }],
    [2, { manifest: m2 }],
    [3, { manifest: m3 }],
  ]);
  // Transaction 2 was committed (server time) shortly after its archive's time; transaction 3,
  // unattributed, has only the log's time, months later.
  const report = auditHistory(history([txn(1), txn(2), txn(3, '2026-11-23T10:00:00.000000Z')], null), [who(1, 'append', '2026-11-23T09:30:00Z'), who(2, 'append', '2026-01-01T01:00:00Z')], {
    manifests,
    archives: null,
    tamChecked: true,
  });
  const [t1, t2, t3] = report.transactions;
  expect(t1.verdict).toBe('ok');
  expect(t2).toMatchObject({ verdict: 'ok', serverTime: '2026-01-01T01:00:00.000Z', archiveTimesOutOfWindow: [] });
  expect(t3.verdict).toBe('suspicious');
  expect(t3.archiveTimesOutOfWindow).toEqual([{ name: 'c', id: idFor('c').toString('hex'), time: old, why: 'past' }]);
  expect(t3.reasons).toContain(`archive c has the time ${old}, more than 7 days before the server time of its transaction`);
  expect(report.sightings?.map((s) => [s.name, s.transaction, s.serverTime, s.baseline])).toEqual([
    ['a', 1, '2026-11-23T09:30:00.000Z', false],
    ['b', 2, '2026-01-01T01:00:00.000Z', false],
    ['c', 3, '2026-11-23T10:00:00.000Z', false],
  ]);
});

test('after a compaction the first manifest is a baseline (a prune key is not "adding" it); an id that left and comes back is relisted', () => {
  const t = '2026-11-23T09:00:00.000000';
  const base = manifest([['a', 'a', t], ['b', 'b', t]]);
  const pruned = manifest([['b', 'b', t]]);
  const back = manifest([['a-again', 'a', t], ['b', 'b', t]]);
  const manifests = new Map<number, ManifestReading>([
    [10, { manifest: base }],
    [11, { manifest: pruned }],
    [12, { manifest: back }],
  ]);
  const at = '2026-11-23T09:30:00Z';
  const report = auditHistory(history([txn(10), txn(11), txn(12)], 9), [who(10, 'prune', at), who(11, 'prune', at), who(12, 'append', at)], {
    manifests,
    archives: [],
    tamChecked: true,
  });
  const [t10, t11, t12] = report.transactions;
  expect(t10).toMatchObject({ verdict: 'ok', archivesAdded: [] });
  expect(t11).toMatchObject({ verdict: 'notice', archivesRemoved: ['a'] });
  expect(t12.verdict).toBe('suspicious');
  expect(t12.archivesRelisted).toEqual([{ name: 'a-again', id: idFor('a').toString('hex'), listedAs: 'a' }]);
  expect(report.sightings?.filter((s) => s.baseline).map((s) => s.name)).toEqual(['a', 'b']);
});
