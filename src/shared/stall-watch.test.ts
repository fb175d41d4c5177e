import { afterEach, describe, expect, it } from 'vitest';

import { noteSlowWork, startStallWatch, type Stall } from './stall-watch.js';

const hold = (ms: number): void => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};
const turns = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('startStallWatch', () => {
  let stop = (): void => {};
  afterEach(() => stop());

  it('reports a held event loop with the slow work noted meanwhile, longest first, and stays quiet otherwise', async () => {
    const stalls: Stall[] = [];
    stop = startStallWatch({ onStall: (s) => stalls.push(s), thresholdMs: 150, tickMs: 20 });
    await turns(200);
    expect(stalls).toEqual([]);
    noteSlowWork('SQL select 1', 25);
    noteSlowWork('SQL select 2', 240);
    hold(300);
    await turns(100);
    expect(stalls).toHaveLength(1);
    expect(stalls[0]!.ms).toBeGreaterThanOrEqual(250);
    expect(stalls[0]!.slowWork.map((w) => w.what)).toEqual(['SQL select 2', 'SQL select 1']);
    // What was noted belongs to that stall only.
    hold(300);
    await turns(100);
    expect(stalls).toHaveLength(2);
    expect(stalls[1]!.slowWork).toEqual([]);
  });
});
