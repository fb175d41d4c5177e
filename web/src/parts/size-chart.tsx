// A size-over-time chart (uPlot, ~50 KB) of a repository's daily statistics (the `statistics`
// job): size on disk, and what compaction would free when borg's hints tell it. uPlot is loaded
// only on the repository page that shows it.
import { useEffect, useRef } from 'react';
import type { RepositoryStat } from '../api';
import { bytes } from '../format';

export function SizeChart({ stats }: { stats: RepositoryStat[] }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el || stats.length === 0) return;
    let plot: { destroy(): void; setSize(s: { width: number; height: number }): void } | null = null;
    let gone = false;
    const observer = new ResizeObserver(() => plot?.setSize({ width: el.clientWidth, height: 200 }));
    void Promise.all([import('uplot'), import('uplot/dist/uPlot.min.css')]).then(([{ default: UPlot }]) => {
      if (gone) return;
      const dark = matchMedia('(prefers-color-scheme: dark)').matches;
      const ink = dark ? '#c9d1d9' : '#333';
      const grid = dark ? '#30363d' : '#e5e5e5';
      // One measurement is drawn as a line from an hour before, so it is not a lone dot.
      const rows = stats.length === 1 ? [{ ...stats[0]!, at: new Date(Date.parse(stats[0]!.at) - 3600_000).toISOString() }, stats[0]!] : stats;
      const xs = rows.map((s) => Date.parse(s.at) / 1000);
      const reclaimable = stats.some((s) => s.reclaimableBytes !== null && s.reclaimableBytes > 0);
      plot = new UPlot(
        {
          width: el.clientWidth,
          height: 200,
          legend: { show: reclaimable },
          cursor: { drag: { x: false, y: false } },
          axes: [
            { stroke: ink, grid: { stroke: grid } },
            { stroke: ink, grid: { stroke: grid }, size: 70, values: (_u: unknown, vals: number[]) => vals.map((v) => bytes(v)) },
          ],
          series: [
            {},
            { label: 'size on disk', stroke: '#2f9e6b', fill: 'rgba(47,158,107,0.15)', width: 2, points: { show: true, size: 5 }, value: (_u: unknown, v: number | null) => bytes(v) },
            ...(reclaimable
              ? [{ label: 'compaction would free', stroke: '#c2410c', width: 2, dash: [6, 4], points: { show: true, size: 4 }, value: (_u: unknown, v: number | null) => bytes(v) }]
              : []),
          ],
        },
        [xs, rows.map((s) => s.sizeBytes), ...(reclaimable ? [rows.map((s) => s.reclaimableBytes)] : [])],
        el,
      );
      observer.observe(el);
    });
    return () => {
      gone = true;
      observer.disconnect();
      plot?.destroy();
    };
  }, [stats]);
  if (stats.length === 0) return null;
  const last = stats.at(-1)!;
  return (
    <div
      ref={box}
      className="chart"
      role="img"
      aria-label={`size on disk over ${stats.length} measurement${stats.length === 1 ? '' : 's'}: ${bytes(last.sizeBytes)} at the latest${last.reclaimableBytes ? `, of which compaction would free ${bytes(last.reclaimableBytes)}` : ''}`}
    />
  );
}
