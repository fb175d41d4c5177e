// The keeping and waiting of dedup-sizes.ts without a repository (the figures themselves are
// checked against borg info in test/browse/dedup-size.test.ts): a request waits at most its
// bound for a computation that does not finish, a failed one is not retried at every request,
// and kept figures answer only for exactly the archives they were computed for.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { archiveSetKey, createDeduplicatedSizeCache, type OpenRepository } from './dedup-sizes.js';

const REPO_ID = 'ab'.repeat(32);
let scratch = '';
let repositoryPath = '';
let root = '';

beforeEach(() => {
  scratch = mkdtempSync(join(tmpdir(), 'bk-dedup-'));
  repositoryPath = join(scratch, 'repo');
  root = join(scratch, 'browse-index');
  mkdirSync(repositoryPath);
  writeFileSync(join(repositoryPath, 'config'), `[repository]\nversion = 1\nsegments_per_dir = 1000\nid = ${REPO_ID}\n`);
});

afterEach(() => rmSync(scratch, { recursive: true, force: true }));

describe('deduplicated sizes kept per set of archives', () => {
  it('answers kept figures for exactly their archives, in any order, without opening the repository', async () => {
    mkdirSync(join(root, REPO_ID), { recursive: true });
    writeFileSync(join(root, REPO_ID, 'deduplicated-sizes.json'), JSON.stringify({ format: 1, archives: archiveSetKey(['a1', 'b2']), transactionId: 7, sizes: { a1: 10, b2: 20 } }));
    const cache = createDeduplicatedSizeCache(root);
    const open: OpenRepository = () => Promise.reject(new Error('not opened'));
    expect(await cache.within(repositoryPath, ['b2', 'a1'], open, 10)).toEqual(new Map([['a1', 10], ['b2', 20]]));
    // Other sets are not answered from them (a computation would be needed: it fails here).
    expect(await cache.within(repositoryPath, ['a1'], open, 10)).toBeNull();
    expect(await cache.within(repositoryPath, ['a1', 'b2', 'c3'], open, 10)).toBeNull();
  });

  it('waits at most its bound for a computation, and tries a failed one again only after a while', async () => {
    let now = 1_000_000;
    const cache = createDeduplicatedSizeCache(root, () => now);
    let opened = 0;
    const never: OpenRepository = () => {
      opened += 1;
      return new Promise(() => {});
    };
    const started = Date.now();
    expect(await cache.within(repositoryPath, ['x'], never, 50)).toBeNull();
    expect(Date.now() - started).toBeLessThan(2000);
    // A request meanwhile joins the running computation instead of starting another.
    expect(await cache.within(repositoryPath, ['x'], never, 10)).toBeNull();
    expect(opened).toBe(1);

    const other = createDeduplicatedSizeCache(root, () => now);
    let failures = 0;
    const failing: OpenRepository = () => {
      failures += 1;
      return Promise.reject(new Error('compacted meanwhile'));
    };
    expect(await other.within(repositoryPath, ['y'], failing, 1000)).toBeNull();
    expect(await other.within(repositoryPath, ['y'], failing, 1000)).toBeNull();
    expect(failures).toBe(1);
    now += 61_000;
    expect(await other.within(repositoryPath, ['y'], failing, 1000)).toBeNull();
    expect(failures).toBe(2);
  });

  it('an uninitialised repository (no config) has no figures, and no error', async () => {
    rmSync(join(repositoryPath, 'config'));
    expect(await createDeduplicatedSizeCache(root).within(repositoryPath, [], () => Promise.reject(new Error('x')), 10)).toBeNull();
  });
});
