import { describe, expect, it } from 'vitest';
import { createClock } from '../../../test/support/temp-store.js';
import { SIZE_CACHE_MS, SIZE_REWALK_AFTER_WRITE_MS, createRepositorySizer } from './repository-size.js';

describe('repository sizes', () => {
  it('keeps an answer for ten minutes, gives it while a fresh walk runs after that, and after a write waits briefly for the walk behind it', async () => {
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
    // Written after the walk (a backup just ended): its walk goes first, and the request waits
    // for it briefly (SIZE_WRITE_WAIT_MS): the new size.
    expect(await sizer.sizeOf('/r', clock.now())).toBe(200);
    expect(walks).toBe(2);
    expect(await sizer.sizeOf('/r', new Date(clock.now().getTime() - 1))).toBe(200);
    expect(walks).toBe(2);
    // A minute on, the old answer at once and a walk behind it.
    bytes = 300;
    clock.advance(SIZE_CACHE_MS);
    expect(await sizer.sizeOf('/r')).toBe(200);
    await new Promise((r) => setTimeout(r, 10));
    expect(walks).toBe(3);
    expect(await sizer.sizeOf('/r')).toBe(300);
  });

  it('never makes a request that has an answer wait on a walk, even a walk that hangs', async () => {
    const clock = createClock();
    const hung: Array<() => void> = [];
    let first = true;
    const sizer = createRepositorySizer({
      now: clock.now,
      measure: (path) => {
        if (first) {
          first = false;
          return Promise.resolve(100);
        }
        // Every later walk hangs until released: a slow disk, a huge repository.
        return new Promise((resolve) => hung.push(() => resolve(path === '/r' ? 500 : 0)));
      },
    });
    expect(await sizer.sizeOf('/r')).toBe(100);
    clock.advance(1000);
    const answered = await Promise.race([sizer.sizeOf('/r', clock.now()), new Promise((r) => setTimeout(() => r('waited'), 200))]);
    expect(answered).toBe(100);
    expect(hung).toHaveLength(1);
    // Asked again while the walk runs: the same answer, no second walk.
    expect(await sizer.sizeOf('/r', clock.now())).toBe(100);
    expect(hung).toHaveLength(1);
    hung[0]!();
    await new Promise((r) => setTimeout(r, 10));
    expect(await sizer.sizeOf('/r')).toBe(500);
  });

  it('walks a repository written again and again at most every SIZE_REWALK_AFTER_WRITE_MS, its first write at once', async () => {
    const clock = createClock();
    let walks = 0;
    const sizer = createRepositorySizer({ now: clock.now, measure: async () => ++walks });
    await sizer.sizeOf('/busy');
    const writeAndAsk = async () => {
      clock.advance(2000);
      await sizer.sizeOf('/busy', clock.now());
      await new Promise((r) => setTimeout(r, 5));
    };
    await writeAndAsk();
    expect(walks).toBe(2); // the first write: walked at once
    for (let i = 0; i < 7; i++) await writeAndAsk(); // 14 s of writes every 2 s
    expect(walks).toBe(2);
    clock.advance(1000);
    await writeAndAsk(); // 15 s after the walk for the first write
    expect(walks).toBe(3);
  });
});
