// The grant watch in fake time with a fake store: what ends a session and why, one query at a
// time whatever the database's speed, nothing ended by a database that does not answer.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { NO_ARCHIVE_RULES, type Grant } from '../store/types.js';
import { noteGrantsChanged, onGrantsChanged } from '../shared/grant-changes.js';
import { GRANT_WATCH_INTERVAL_MS, watchGrant, whyGrantEnded, type GrantStanding, type WatchedGrant } from './grant-watch.js';

const T0 = new Date('2026-12-06T01:00:00Z');
const grant: Grant = { id: 4, keyId: 7, repositoryId: 3, role: 'append', writesPerDay: null, fromCidrs: null, expiresAt: null, createdAt: T0, ...NO_ARCHIVE_RULES };
const watched: WatchedGrant = { keyName: 'laptop', repositoryName: 'main', grant, addressAllowed: (cidrs) => cidrs.includes('192.0.2.0/24') };
const standing = (over: Partial<Grant> | null, keyRevokedAt: Date | null = null): GrantStanding => ({ keyRevokedAt, grant: over === null ? null : { ...grant, ...over } });

describe('whyGrantEnded', () => {
  it('lets the session go on while key and grant stand as they did, whatever else changed', () => {
    expect(whyGrantEnded(watched, standing({}), T0)).toBeNull();
    expect(whyGrantEnded(watched, standing({ writesPerDay: 1, expiresAt: new Date(T0.getTime() + 1000) }), T0)).toBeNull();
    expect(whyGrantEnded(watched, standing({ fromCidrs: ['192.0.2.0/24'] }), T0)).toBeNull();
  });

  it('says why it must end: key revoked, grant removed or replaced, expired, role changed, address no longer allowed', () => {
    const revokedAt = new Date('2026-12-06T01:02:03.456Z');
    expect(whyGrantEnded(watched, standing(null, revokedAt), T0)).toBe("the key 'laptop' was revoked at 2026-12-06T01:02:03.456Z");
    expect(whyGrantEnded(watched, undefined, T0)).toBe("the key 'laptop' is no longer registered");
    expect(whyGrantEnded(watched, standing(null), T0)).toBe("the grant of key 'laptop' on repository 'main' was removed");
    expect(whyGrantEnded(watched, standing({ id: 5 }), T0)).toBe("the grant of key 'laptop' on repository 'main' was removed");
    expect(whyGrantEnded(watched, standing({ expiresAt: T0 }), T0)).toBe("the grant of key 'laptop' on repository 'main' expired at 2026-12-06T01:00:00.000Z");
    expect(whyGrantEnded(watched, standing({ role: 'read' }), T0)).toBe("the grant of key 'laptop' on repository 'main' changed from role append to read");
    expect(whyGrantEnded(watched, standing({ fromCidrs: ['198.51.100.0/24'] }), T0)).toBe("the grant of key 'laptop' on repository 'main' no longer allows the client's address");
  });
});

describe('watchGrant', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('aborts its signal with the reason at the first look that finds the key revoked', async () => {
    let revokedAt: Date | null = null;
    const read = vi.fn(async () => standing(revokedAt === null ? {} : null, revokedAt));
    const watch = watchGrant({ read, judge: (st, at) => whyGrantEnded(watched, st, at), now: () => T0 });
    await vi.advanceTimersByTimeAsync(GRANT_WATCH_INTERVAL_MS * 3);
    expect(read).toHaveBeenCalledTimes(3);
    expect(watch.signal.aborted).toBe(false);
    revokedAt = T0;
    await vi.advanceTimersByTimeAsync(GRANT_WATCH_INTERVAL_MS);
    expect(watch.signal.aborted).toBe(true);
    expect(watch.signal.reason).toBe("the key 'laptop' was revoked at 2026-12-06T01:00:00.000Z");
    await vi.advanceTimersByTimeAsync(GRANT_WATCH_INTERVAL_MS * 4);
    expect(read).toHaveBeenCalledTimes(4); // no more looks once it fired
  });

  it('notices an expiry passing by the clock alone', async () => {
    let now = T0;
    const watch = watchGrant({ read: async () => standing({ expiresAt: new Date(T0.getTime() + 700) }), judge: (st, at) => whyGrantEnded(watched, st, at), now: () => now });
    await vi.advanceTimersByTimeAsync(GRANT_WATCH_INTERVAL_MS);
    expect(watch.signal.aborted).toBe(false);
    now = new Date(T0.getTime() + 1000);
    await vi.advanceTimersByTimeAsync(GRANT_WATCH_INTERVAL_MS);
    expect(String(watch.signal.reason)).toMatch(/expired at/);
  });

  it('looks at the moment the grant it was opened with expires, not up to an interval later', async () => {
    let now = T0;
    const expiresAt = new Date(T0.getTime() + 1234);
    const read = vi.fn(async () => standing({ expiresAt }));
    const watch = watchGrant({ read, judge: (st, at) => whyGrantEnded(watched, st, at), now: () => now, intervalMs: 60_000, deadline: expiresAt });
    now = new Date(T0.getTime() + 1200);
    await vi.advanceTimersByTimeAsync(1200);
    expect(watch.signal.aborted).toBe(false);
    expect(read).not.toHaveBeenCalled();
    now = new Date(T0.getTime() + 1240);
    await vi.advanceTimersByTimeAsync(40);
    expect(read).toHaveBeenCalledTimes(1);
    expect(String(watch.signal.reason)).toMatch(/expired at/);
    // An expiry moved later since the session opened: the look at the old deadline ends nothing.
    now = T0;
    const later = new Date(T0.getTime() + 90_000);
    const moved = watchGrant({ read: async () => standing({ expiresAt: later }), judge: (st, at) => whyGrantEnded(watched, st, at), now: () => now, intervalMs: 60_000, deadline: expiresAt });
    now = new Date(T0.getTime() + 1300);
    await vi.advanceTimersByTimeAsync(1300);
    expect(moved.signal.aborted).toBe(false);
    moved.stop();
  });

  it('asks one query at a time: a slow database gets no queue of looks', async () => {
    let inFlight = 0;
    let most = 0;
    const read = vi.fn(async () => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((r) => setTimeout(r, GRANT_WATCH_INTERVAL_MS * 10));
      inFlight--;
      return standing({});
    });
    const watch = watchGrant({ read, judge: (st, at) => whyGrantEnded(watched, st, at), now: () => T0 });
    await vi.advanceTimersByTimeAsync(GRANT_WATCH_INTERVAL_MS * 25);
    expect(most).toBe(1);
    expect(read.mock.calls.length).toBeLessThanOrEqual(3);
    watch.stop();
  });

  it('ends nothing when the database fails, and looks again', async () => {
    let fail = true;
    const read = vi.fn(async () => {
      if (fail) throw new Error('SQLITE_BUSY');
      return standing(null);
    });
    const watch = watchGrant({ read, judge: (st, at) => whyGrantEnded(watched, st, at), now: () => T0 });
    await vi.advanceTimersByTimeAsync(GRANT_WATCH_INTERVAL_MS * 3);
    expect(watch.signal.aborted).toBe(false);
    fail = false;
    await vi.advanceTimersByTimeAsync(GRANT_WATCH_INTERVAL_MS);
    expect(watch.signal.aborted).toBe(true);
  });

  it('stop() ends the looks, also one under way', async () => {
    let release: () => void = () => undefined;
    const read = vi.fn(() => new Promise<GrantStanding>((resolve) => (release = () => resolve(standing(null)))));
    const watch = watchGrant({ read, judge: (st, at) => whyGrantEnded(watched, st, at), now: () => T0 });
    await vi.advanceTimersByTimeAsync(GRANT_WATCH_INTERVAL_MS);
    watch.stop();
    release();
    await vi.advanceTimersByTimeAsync(GRANT_WATCH_INTERVAL_MS * 4);
    expect(watch.signal.aborted).toBe(false);
    expect(read).toHaveBeenCalledTimes(1);
  });

  it('a write in this process (noteGrantsChanged) makes it look at once; a write during a look gets one more look', async () => {
    let revoked = false;
    let release: (() => void) | null = null;
    const read = vi.fn(async () => {
      const read = standing(revoked ? null : {}, revoked ? T0 : null); // what the database said
      if (release === null) await new Promise<void>((r) => (release = r)); // ...and its answer on the way
      return read;
    });
    const watch = watchGrant({ read, judge: (st, at) => whyGrantEnded(watched, st, at), now: () => T0, onChange: onGrantsChanged });
    noteGrantsChanged(); // before any interval passed
    expect(read).toHaveBeenCalledTimes(1);
    revoked = true;
    noteGrantsChanged(); // during that look, which may have read before the write
    noteGrantsChanged();
    expect(read).toHaveBeenCalledTimes(1); // still one query at a time
    release!();
    await vi.advanceTimersByTimeAsync(0);
    expect(read).toHaveBeenCalledTimes(2);
    expect(watch.signal.reason).toBe("the key 'laptop' was revoked at 2026-12-06T01:00:00.000Z");
    // Fired: no longer listening.
    noteGrantsChanged();
    expect(read).toHaveBeenCalledTimes(2);
  });

  it('stop() also stops listening for writes', async () => {
    const read = vi.fn(async () => standing({}));
    const watch = watchGrant({ read, judge: (st, at) => whyGrantEnded(watched, st, at), now: () => T0, onChange: onGrantsChanged });
    watch.stop();
    noteGrantsChanged();
    await vi.advanceTimersByTimeAsync(GRANT_WATCH_INTERVAL_MS * 2);
    expect(read).not.toHaveBeenCalled();
  });
});
