// A size-over-time chart (uPlot, ~50 KB): cumulative data received by committed backup sessions,
// from the ledger, with today's size on disk as the last point. uPlot is loaded only on the
// repository page that shows it.
import { useEffect, useRef } from 'react';
import type { Session } from '../api';
import { bytes } from '../format';

export interface SizePoint {
  t: number; // seconds since the epoch
  bytes: number;
}

/** Cumulative bytes received by sessions that committed, oldest first. */
export function receivedOverTime(sessions: Session[]): SizePoint[] {
  const committed = sessions
    .filter((s) => s.endedAt && (s.transactions ?? []).some((t) => t.state === 'committed'))
    .sort((a, b) => a.endedAt!.localeCompare(b.endedAt!));
  let total = 0;
  return committed.map((s) => {
    total += s.bytesIn;
    return { t: new Date(s.endedAt!).getTime() / 1000, bytes: total };
  });
}

export function SizeChart({ points, label }: { points: SizePoint[]; label: string }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el || points.length === 0) return;
    let plot: { destroy(): void; setSize(s: { width: number; height: number }): void } | null = null;
    let gone = false;
    const observer = new ResizeObserver(() => plot?.setSize({ width: el.clientWidth, height: 200 }));
    void Promise.all([import('uplot'), import('uplot/dist/uPlot.min.css')]).then(([{ default: UPlot }]) => {
      if (gone) return;
      const dark = matchMedia('(prefers-color-scheme: dark)').matches;
      const ink = dark ? '#c9d1d9' : '#333';
      const grid = dark ? '#30363d' : '#e5e5e5';
      const xs = points.length === 1 ? [points[0]!.t - 3600, points[0]!.t] : points.map((p) => p.t);
      const ys = points.length === 1 ? [0, points[0]!.bytes] : points.map((p) => p.bytes);
      plot = new UPlot(
        {
          width: el.clientWidth,
          height: 200,
          legend: { show: false },
          cursor: { drag: { x: false, y: false } },
          axes: [
            { stroke: ink, grid: { stroke: grid } },
            { stroke: ink, grid: { stroke: grid }, size: 70, values: (_u: unknown, vals: number[]) => vals.map((v) => bytes(v)) },
          ],
          series: [{}, { label, stroke: '#2f9e6b', fill: 'rgba(47,158,107,0.15)', width: 2, points: { show: true, size: 5 } }],
        },
        [xs, ys],
        el,
      );
      observer.observe(el);
    });
    return () => {
      gone = true;
      observer.disconnect();
      plot?.destroy();
    };
  }, [points, label]);
  if (points.length === 0) return <p className="muted">No committed backup yet: the chart starts with the first one.</p>;
  return <div ref={box} className="chart" role="img" aria-label={`${label}: ${bytes(points.at(-1)!.bytes)} by the latest backup`} />;
}
