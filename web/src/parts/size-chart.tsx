// A size-over-time chart (uPlot, ~50 KB) of a repository's daily statistics (the `statistics`
// job): size on disk, and what compaction would free when borg's hints tell it. uPlot is loaded
// only on the repository page that shows it. What it draws is built in size-chart-options.ts.
import { useEffect, useRef } from 'react';
import type { RepositoryStat } from '../api';
import { bytes } from '../format';
import { sizeChartSpec } from './size-chart-options';

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
      const spec = sizeChartSpec(stats, { width: el.clientWidth, ink, grid, bytes });
      plot = new UPlot(
        spec.options as unknown as ConstructorParameters<typeof UPlot>[0],
        spec.data as unknown as ConstructorParameters<typeof UPlot>[1],
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
