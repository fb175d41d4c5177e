// The size chart's spec (web/src/parts/size-chart-options.ts), as a unit: one or two measurements
// are points with no line and no invented measurement; three or more are a line; the legend is
// shown and, with no cursor on the chart, holds the latest measurement instead of "--".
import { describe, expect, it } from 'vitest';
import { sizeChartSpec, type SizeStat } from '../../web/src/parts/size-chart-options.js';

const look = { width: 600, ink: '#333', grid: '#eee', bytes: (n: number | null) => (n === null ? '—' : `${n} B`) };
const stat = (day: number, sizeBytes: number, reclaimableBytes: number | null = null): SizeStat => ({ at: `2026-12-0${day}T03:00:00Z`, sizeBytes, reclaimableBytes });

describe('the size chart', () => {
  it('draws one measurement as one point: no line, no fill, no second point', () => {
    const { options, data } = sizeChartSpec([stat(1, 500)], look);
    expect(data).toEqual([[Date.parse('2026-12-01T03:00:00Z') / 1000], [500]]);
    const size = options.series[1]!;
    expect(size.paths?.()).toBeNull();
    expect(size.points?.show).toBe(true);
    expect(size.fill).toBeUndefined();
    // The lone point sits inside the x range, with room either side.
    const x = data[0]![0]!;
    const [min, max] = options.scales.x.range!(null, x, x);
    expect(min).toBeLessThan(x);
    expect(max).toBeGreaterThan(x);
  });

  it('draws two measurements as two points, and three or more as a line', () => {
    const two = sizeChartSpec([stat(1, 500), stat(2, 700, 100)], look);
    expect(two.data).toHaveLength(3);
    expect(two.data[1]).toEqual([500, 700]);
    expect(two.options.series.slice(1).map((s) => (s.paths ? s.paths() : 'line'))).toEqual([null, null]);
    const three = sizeChartSpec([stat(1, 500), stat(2, 700), stat(3, 800)], look);
    expect(three.options.series[1]!.paths).toBeUndefined();
    expect(three.options.series[1]!.fill).toBeDefined();
    expect(three.options.scales.x.range).toBeUndefined();
  });

  it('fills the legend: labels always, the latest values without a cursor, the hovered ones with it', () => {
    const { options } = sizeChartSpec([stat(1, 500, 50), stat(2, 700, 100)], look);
    expect(options.legend.show).toBe(true);
    expect(options.series.map((s) => s.label)).toEqual(['measured', 'size on disk', 'compaction would free']);
    expect(options.series[1]!.value!(null, null, 1, null)).toBe('700 B');
    expect(options.series[2]!.value!(null, null, 2, null)).toBe('100 B');
    expect(options.series[1]!.value!(null, 500, 1, 0)).toBe('500 B');
    expect(options.series[0]!.value!(null, null, 0, null)).toMatch(/2026.*\(latest\)/);
    // A single measurement without compaction hints: the legend still shows its size.
    const one = sizeChartSpec([stat(1, 500)], look);
    expect(one.options.legend.show).toBe(true);
    expect(one.options.series[1]!.value!(null, null, 1, null)).toBe('500 B');
  });
});
