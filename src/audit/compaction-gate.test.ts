import { describe, expect, it } from 'vitest';

import { gateState } from '../store/history-store.js';
import type { RepositoryEvent } from '../store/history-store.js';
import { coverageFromEvents, decideCompaction, describeUnverified, type GateAttribution } from './compaction-gate.js';

const at = new Date('2025-01-02T03:04:05.678Z');
/** Events given oldest first; returned newest first, as the store lists them. */
const events = (...list: Array<[RepositoryEvent['kind'], RepositoryEvent['verdict'], number | null]>): RepositoryEvent[] =>
  list.map(([kind, verdict, throughTxn], i) => ({ id: i + 1, repositoryId: 1, kind, verdict, throughTxn, actor: 'ann', detail: '', at })).reverse();
const txn = (id: number, over: Partial<{ objectsOverwritten: number; deletedOlderFrom: number[] }> = {}) => ({ id, objectsOverwritten: 0, deletedOlderFrom: [], ...over });
const who = (borgTransactionId: number, sessionId: number, role: GateAttribution['role'] = 'append'): GateAttribution => ({ borgTransactionId, sessionId, keyName: `k${sessionId}`, role });

describe('coverage from events', () => {
  it('is the highest transaction a clean audit, an approval or an allowed compaction covered since the newest rollback', () => {
    expect(coverageFromEvents(events())).toEqual({ keyVerifiedThrough: null, coveredThrough: null, by: null });
    const c = coverageFromEvents(events(['audit', 'clean', 5], ['approve', null, 9], ['audit', 'suspicious', 12], ['audit', 'clean-structural', 14]));
    expect(c).toEqual({ keyVerifiedThrough: 9, coveredThrough: 9, by: 'ann approved the history through transaction 9 at 2025-01-02T03:04:05Z' });
    expect(coverageFromEvents(events(['approve', null, 9], ['compaction', null, 15]))).toMatchObject({ keyVerifiedThrough: 9, coveredThrough: 15 });
  });

  it('a rollback uncovers what was said before it; an approval after it covers again', () => {
    expect(coverageFromEvents(events(['approve', null, 9], ['rollback', null, 4])).coveredThrough).toBeNull();
    expect(coverageFromEvents(events(['approve', null, 9], ['rollback', null, 4], ['approve', null, 4])).coveredThrough).toBe(4);
  });
});

describe('the decision at the moment of compaction', () => {
  const none = coverageFromEvents(events());

  it('allows when every uncovered transaction only added data or deleted what its own session wrote', () => {
    // Txn 5 deletes an object txn 3 wrote, both of session 2 (a checkpoint replaced).
    const d = decideCompaction([txn(1), txn(3), txn(5, { deletedOlderFrom: [3] })], [who(1, 1, 'full'), who(3, 2), who(5, 2)], none, null);
    expect(d).toMatchObject({ allow: true, unverified: [], structurallyVerified: 3 });
  });

  it('a transaction that deleted older objects or overwrote any waits for review; coverage lets it pass', () => {
    const history = [txn(1), txn(3), txn(5, { deletedOlderFrom: [3, 3] }), txn(7, { objectsOverwritten: 1 })];
    const ledger = [who(1, 1, 'full'), who(3, 2), who(5, 3, 'prune'), who(7, 4, 'full')];
    const d = decideCompaction(history, ledger, none, null);
    expect(d.allow).toBe(false);
    expect(d.unverified).toEqual([
      { id: 5, session: 3, key: 'k3', role: 'prune', why: 'deleted 2 objects written by earlier sessions' },
      { id: 7, session: 4, key: 'k4', role: 'full', why: 'overwrote 1 object already in the repository' },
    ]);
    expect(describeUnverified(d.unverified)).toBe(
      "transaction 5 (session 3, key 'k3', prune role) deleted 2 objects written by earlier sessions; transaction 7 (session 4, key 'k4', full role) overwrote 1 object already in the repository",
    );
    expect(decideCompaction(history, ledger, coverageFromEvents(events(['approve', null, 5])), null).unverified.map((u) => u.id)).toEqual([7]);
    expect(decideCompaction(history, ledger, coverageFromEvents(events(['audit', 'clean', 7])), null).allow).toBe(true);
  });

  it('an approval covers only through the transaction it names: a later removal is not covered', () => {
    const history = [txn(3), txn(5, { deletedOlderFrom: [3] }), txn(9, { deletedOlderFrom: [3] })];
    const ledger = [who(3, 2), who(5, 3, 'prune'), who(9, 4, 'prune')];
    expect(decideCompaction(history, ledger, coverageFromEvents(events(['approve', null, 5])), null).unverified.map((u) => u.id)).toEqual([9]);
  });

  it("the asking session's own deletes of older objects keep it from compacting in the same commit", () => {
    const d = decideCompaction([txn(1)], [who(1, 1)], none, { sessionId: 9, deletedOlder: 4, overwritten: 0 });
    expect(d.allow).toBe(false);
    expect(d.unverified[0]).toMatchObject({ id: null, session: 9, why: "this session's own transaction deletes 4 objects written by earlier sessions" });
    expect(decideCompaction([txn(1)], [who(1, 1)], none, { sessionId: 9, deletedOlder: 0, overwritten: 0 }).allow).toBe(true);
  });

  it('a transaction written outside borgkeep that deleted anything older waits; one that only added passes', () => {
    const d = decideCompaction([txn(3), txn(5, { deletedOlderFrom: [3] }), txn(6)], [who(3, 2)], none, null);
    expect(d.unverified).toEqual([{ id: 5, session: null, key: null, role: null, why: 'deleted 1 object written by earlier transactions and was written outside borgkeep' }]);
  });
});

describe('what the console shows', () => {
  it('open when nothing after the coverage removed data, closed naming the transaction that waits', () => {
    const none = coverageFromEvents(events());
    expect(gateState(none, null)).toMatchObject({ open: true, waitingTxn: null });
    expect(gateState(none, 7)).toMatchObject({ open: false, waitingTxn: 7 });
    expect(gateState(none, 7).why).toBe('transaction 7 removed or overwrote data that nobody has verified yet: compaction is deferred until an audit with the passphrase or an approval covers it');
    expect(gateState(coverageFromEvents(events(['approve', null, 7])), 7)).toMatchObject({ open: true, coveredThrough: 7 });
  });
});
