// What the size chart (size-chart.tsx) hands uPlot, built apart from React and the DOM so a unit
// test checks it under node: the series, their legend values and the data. It must never invent
// a measurement: one or two are drawn as points only (a line through one or two dots claims a
// trend nobody measured), and the data holds exactly the measurements given.
//
// No imports (the test's tsconfig resolves modules differently from the console's): the byte
// formatter comes in as an argument.

export interface SizeStat {
  at: string;
  sizeBytes: number;
  reclaimableBytes: number | null;
}

/** Below this many measurements the chart draws points, not lines. */
export const POINTS_ONLY_BELOW = 3;

type Value = (u: unknown, v: number | null, seriesIdx: number, idx: number | null) => string;

export interface SizeChartSpec {
  options: {
    width: number;
    height: number;
    legend: { show: boolean; live: boolean };
    cursor: { drag: { x: boolean; y: boolean } };
    scales: { x: { time: boolean; range?: (u: unknown, min: number, max: number) => [number, number] } };
    axes: Array<Record<string, unknown>>;
    series: Array<{ label?: string; value?: Value; stroke?: string; fill?: string; width?: number; dash?: number[]; points?: { show: boolean; size: number; space?: number }; paths?: () => null }>;
  };
  data: Array<Array<number | null>>;
}

const when = (seconds: number) => new Date(seconds * 1000).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });

export function sizeChartSpec(stats: readonly SizeStat[], look: { width: number; ink: string; grid: string; bytes: (n: number | null) => string }): SizeChartSpec {
  const xs = stats.map((s) => Date.parse(s.at) / 1000);
  const sizes = stats.map((s) => s.sizeBytes);
  const frees = stats.map((s) => s.reclaimableBytes);
  const reclaimable = frees.some((v) => v !== null && v > 0);
  const pointsOnly = stats.length < POINTS_ONLY_BELOW;
  const last = stats.length - 1;
  // The legend shows the value under the cursor, and the latest measurement when there is none
  // (uPlot's default is "--", an empty-looking legend).
  const valueOf = (column: Array<number | null>): Value => (_u, v, _s, idx) => look.bytes(idx === null ? (column[last] ?? null) : v);
  const line = pointsOnly ? { paths: () => null, points: { show: true, size: 9, space: 0 } } : { points: { show: true, size: 5 } };
  return {
    options: {
      width: look.width,
      height: 200,
      legend: { show: true, live: true },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: {
          time: true,
          // One or two points: room either side, so a lone point sits inside the chart, not on its edge.
          ...(pointsOnly && { range: (_u: unknown, min: number, max: number): [number, number] => { const pad = Math.max((max - min) * 0.15, 12 * 3600); return [min - pad, max + pad]; } }),
        },
      },
      axes: [
        { stroke: look.ink, grid: { stroke: look.grid } },
        { stroke: look.ink, grid: { stroke: look.grid }, size: 70, values: (_u: unknown, vals: number[]) => vals.map((v) => look.bytes(v)) },
      ],
      series: [
        { label: 'measured', value: (_u, v, _s, idx) => (idx === null ? `${when(xs[last]!)} (latest)` : v === null ? '—' : when(v)) },
        { label: 'size on disk', stroke: '#2f9e6b', width: 2, ...(pointsOnly ? {} : { fill: 'rgba(47,158,107,0.15)' }), ...line, value: valueOf(sizes) },
        ...(reclaimable ? [{ label: 'compaction would free', stroke: '#c2410c', width: 2, dash: [6, 4], ...line, value: valueOf(frees) }] : []),
      ],
    },
    data: [xs, sizes, ...(reclaimable ? [frees] : [])],
  };
}
