import { describe, expect, it } from 'vitest';
import { classifyRun, METHOD_COMMIT_COMPACT, METHOD_OPEN_CREATE, METHOD_ROLLBACK, type RunFacts } from './run-kind.js';

const txn = (t: Partial<RunFacts['transactions'][number]> = {}) => ({ objectsPut: 0, objectsDeleted: 0, objectsOverwritten: 0, manifestWritten: false, ...t });
const facts = (f: Partial<RunFacts> = {}): RunFacts => ({ sessionKind: 'client', methods: [], transactions: [], denials: [], ...f });
const reads = ['open', 'get', 'get_many', 'list', 'load_key', 'get_free_nonce'];

describe('classifyRun', () => {
  it('a borg create: new objects and a manifest', () => {
    expect(classifyRun(facts({ methods: [...reads, 'put', 'commit'], transactions: [txn({ objectsPut: 12, manifestWritten: true })] }))).toBe('backup');
    // A backup with nothing new still puts its archive object; a failed one (rolled back) is still a backup.
    expect(classifyRun(facts({ methods: null, transactions: [txn({ objectsPut: 1 })] }))).toBe('backup');
  });

  it('a backup refused (a read key, or the backups per day used up) is a backup that was refused', () => {
    expect(classifyRun(facts({ denials: [{ method: 'put', reason: 'BK_DENY_ROLE' }] }))).toBe('backup');
    expect(classifyRun(facts({ denials: [{ method: 'put', reason: 'BK_DENY_WRITE_LIMIT' }] }))).toBe('backup');
  });

  it('a prune: deletes and a manifest, nothing new; refused deletes and archive-rule refusals too', () => {
    expect(classifyRun(facts({ methods: [...reads, 'delete', 'put', 'commit'], transactions: [txn({ objectsDeleted: 40, manifestWritten: true })] }))).toBe('prune');
    expect(classifyRun(facts({ methods: reads, denials: [{ method: 'delete', reason: 'BK_DENY_ROLE' }] }))).toBe('prune');
    expect(classifyRun(facts({ methods: reads, denials: [{ method: 'put', reason: 'BK_DENY_ARCHIVE_RULE' }] }))).toBe('prune');
  });

  it('a compact: a commit asking for compaction with nothing written; a refused one too', () => {
    expect(classifyRun(facts({ methods: ['open', METHOD_COMMIT_COMPACT] }))).toBe('compact');
    // borg 1.2.4's compact writes the manifest again (seen with the real client).
    expect(classifyRun(facts({ methods: ['open', 'get', 'put', METHOD_COMMIT_COMPACT], transactions: [txn({ manifestWritten: true })] }))).toBe('compact');
    // A legacy (borg 1.1) prune compacts at its commit: still a prune.
    expect(classifyRun(facts({ methods: ['open', 'delete', 'put', METHOD_COMMIT_COMPACT], transactions: [txn({ objectsDeleted: 4, manifestWritten: true })] }))).toBe('prune');
    expect(classifyRun(facts({ methods: ['open'], denials: [{ method: 'commit', reason: 'BK_DENY_COMPACT' }] }))).toBe('compact');
    // borg 1.1's commit always compacts: its backup stays a backup.
    expect(classifyRun(facts({ methods: [...reads, 'put', METHOD_COMMIT_COMPACT], transactions: [txn({ objectsPut: 3, manifestWritten: true })] }))).toBe('backup');
  });

  it('list/extract: reads only', () => {
    expect(classifyRun(facts({ methods: reads }))).toBe('list-extract');
  });

  it('check, also with --repair (which commits)', () => {
    expect(classifyRun(facts({ methods: ['open', 'check', 'list', 'get'] }))).toBe('check');
    expect(classifyRun(facts({ methods: ['open', 'check', 'put', METHOD_COMMIT_COMPACT], transactions: [txn({ objectsPut: 2, objectsDeleted: 1 })] }))).toBe('check');
  });

  it('key change, and init (which writes a key and a manifest)', () => {
    expect(classifyRun(facts({ methods: ['open', 'load_key', 'save_key'] }))).toBe('key-change');
    expect(classifyRun(facts({ methods: ['open'], denials: [{ method: 'save_key', reason: 'BK_DENY_ROLE' }] }))).toBe('key-change');
    expect(classifyRun(facts({ methods: ['open', METHOD_OPEN_CREATE, 'save_key', 'put', 'commit'], transactions: [txn({ manifestWritten: true })] }))).toBe('init');
    expect(classifyRun(facts({ methods: [], denials: [{ method: 'open', reason: 'BK_DENY_CREATE' }] }))).toBe('init');
  });

  it("the server's retention run and borgkeep's rollback are named so, whatever they did", () => {
    expect(classifyRun(facts({ sessionKind: 'retention', methods: ['open', 'delete', 'put', 'commit'], transactions: [txn({ objectsDeleted: 5, manifestWritten: true })] }))).toBe('retention');
    expect(classifyRun(facts({ methods: [METHOD_ROLLBACK], transactions: [txn({ manifestWritten: true })] }))).toBe('rollback');
  });

  it('other: nothing done (refused at the door), or methods not recorded and no writes', () => {
    expect(classifyRun(facts({ denials: [{ method: 'open', reason: 'BK_DENY_NO_REPOSITORY' }] }))).toBe('other');
    expect(classifyRun(facts({ methods: null }))).toBe('other');
  });
});
