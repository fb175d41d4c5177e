import { afterEach, beforeEach, expect, it } from 'vitest';
import { openTempStore, type TempStore } from '../../test/support/temp-store.js';

let t: TempStore;
beforeEach(async () => {
  t = await openTempStore();
});
afterEach(() => t.cleanup());

it('a lease has one holder at a time across processes, renewed by it, taken over once it expires or is given up', async () => {
  const other = await t.openAnother();
  try {
    // Two gateways asking at once: exactly one gets it.
    const asked = await Promise.all([t.store.holdLease('jobs', 'a', 60_000), other.holdLease('jobs', 'b', 60_000), t.store.holdLease('jobs', 'a', 60_000), other.holdLease('jobs', 'b', 60_000)]);
    const winner = asked[0] ? 'a' : 'b';
    expect(asked).toEqual(winner === 'a' ? [true, false, true, false] : [false, true, false, true]);
    const [mine, theirs] = winner === 'a' ? [t.store, other] : [other, t.store];
    const loser = winner === 'a' ? 'b' : 'a';
    t.clock.advance(50_000);
    expect(await mine.holdLease('jobs', winner, 60_000)).toBe(true); // renewed: 60 s from now
    t.clock.advance(50_000);
    expect(await theirs.holdLease('jobs', loser, 60_000)).toBe(false);
    t.clock.advance(11_000); // past the renewal's end
    expect(await theirs.holdLease('jobs', loser, 60_000)).toBe(true);
    expect(await mine.holdLease('jobs', winner, 60_000)).toBe(false);
    // Given up by its holder (only by its holder): free at once.
    await mine.releaseLease('jobs', winner);
    expect(await mine.holdLease('jobs', winner, 60_000)).toBe(false);
    await theirs.releaseLease('jobs', loser);
    expect(await mine.holdLease('jobs', winner, 60_000)).toBe(true);
    // Other leases are apart.
    expect(await theirs.holdLease('other-duty', loser, 60_000)).toBe(true);
  } finally {
    await other.close();
  }
});
