import { describe, expect, it } from 'vitest';
import { createClock } from '../../../test/support/temp-store.js';
import { SIZE_CACHE_MS, createRepositorySizer } from './repository-size.js';

describe('repository sizes', () => {
  it('keeps an answer for a minute, gives it while a fresh walk runs after that, and walks again at once after the repository was written', async () => {
    const clock = createClock();
    let bytes = 100;
    let walks = 0;
    const sizer = createRepositorySizer({
      now: clock.now,
      measure: async () => {
        walks++;
        return bytes;
      },
    });
    expect(await sizer.sizeOf('/r')).toBe(100);
    bytes = 200;
    clock.advance(1000);
    // Unchanged since the walk (its last write before it): the kept answer.
    expect(await sizer.sizeOf('/r', new Date(clock.now().getTime() - 5000))).toBe(100);
    expect(walks).toBe(1);
    // Written after the walk (a backup just ended): walked again before answering.
    expect(await sizer.sizeOf('/r', clock.now())).toBe(200);
    expect(walks).toBe(2);
    expect(await sizer.sizeOf('/r', clock.now())).toBe(200);
    expect(walks).toBe(2);
    // A minute on, the old answer at once and a walk behind it.
    bytes = 300;
    clock.advance(SIZE_CACHE_MS);
    expect(await sizer.sizeOf('/r')).toBe(200);
    await new Promise((r) => setTimeout(r, 10));
    expect(walks).toBe(3);
    expect(await sizer.sizeOf('/r')).toBe(300);
  });
});
