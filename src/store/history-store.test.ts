import { describe, expect, it } from 'vitest';
import { gateFromEvents, type RepositoryEvent } from './history-store.js';

const ev = (kind: RepositoryEvent['kind'], verdict: RepositoryEvent['verdict'], throughTxn: number | null): Omit<RepositoryEvent, 'id'> => ({
  repositoryId: 1,
  kind,
  throughTxn,
  verdict,
  actor: 'admin',
  detail: '',
  at: new Date('2025-01-02T03:04:05.678Z'),
});
/** Events given oldest first; the gate reads them newest first. */
const gate = (...oldestFirst: RepositoryEvent[]) => gateFromEvents([...oldestFirst].sort((a, b) => b.id - a.id));
/** Ids in the order given: the first is the oldest. */
const seq = (list: Array<Omit<RepositoryEvent, 'id'>>): RepositoryEvent[] => list.map((e, i) => ({ ...e, id: i + 1 }));

describe('compaction gate from events', () => {
  it('opens on an approval or a clean full audit, closes on a rollback or a suspicious audit', () => {
    const [clean, approve, rollback, suspicious] = seq([ev('audit', 'clean', 5), ev('approve', null, 6), ev('rollback', null, 4), ev('audit', 'suspicious', 9)]);
    expect(gate(clean!)).toEqual({ open: true, why: 'the audit at 2025-01-02T03:04:05Z found the history clean through transaction 5' });
    expect(gate(clean!, approve!)).toEqual({ open: true, why: 'admin approved the history through transaction 6 at 2025-01-02T03:04:05Z' });
    expect(gate(clean!, approve!, rollback!).open).toBe(false);
    expect(gate(clean!, approve!, suspicious!).why).toMatch(/suspicious transactions/);
  });

  it('a structural audit closes the gate only when it saw transactions newer than the last opening event', () => {
    const [clean, sameTxn, newerTxn, laterApprove] = seq([ev('audit', 'clean', 5), ev('audit', 'clean-structural', 5), ev('audit', 'clean-structural', 8), ev('approve', null, 8)]);
    expect(gate(clean!, sameTxn!)).toMatchObject({ open: true });
    expect(gate(clean!, sameTxn!, newerTxn!)).toEqual({ open: false, why: 'an audit at 2025-01-02T03:04:05Z saw transactions newer than the last review' });
    expect(gate(clean!, sameTxn!, newerTxn!, laterApprove!)).toMatchObject({ open: true });
    expect(gate(sameTxn!, newerTxn!)).toEqual({ open: false, why: 'the history since the last compaction has not been audited clean or approved yet' });
    expect(gate()).toMatchObject({ open: false });
  });
});
