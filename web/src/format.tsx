// Sizes, durations and times as people read them. Times are relative ("3 min ago") with the
// exact time in the title, so hovering (or a long press) shows it.
import { useEffect, useState, type ReactNode } from 'react';
import { formatBytes } from '../../src/shared/size';

/** A size as the CLI and the alerts write it too (src/shared/size.ts); "—" when not known. */
export function bytes(n: number | null | undefined): string {
  return n === null || n === undefined ? '—' : formatBytes(n);
}

export function duration(seconds: number): string {
  const s = Math.abs(Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86400 * 2) return `${Math.round(s / 360) / 10} h`.replace('.0 h', ' h');
  return `${Math.round(s / 86400)} days`;
}

export function relative(iso: string, now: number): string {
  const seconds = (now - new Date(iso).getTime()) / 1000;
  if (Math.abs(seconds) < 5) return 'just now';
  return seconds >= 0 ? `${duration(seconds)} ago` : `in ${duration(seconds)}`;
}

export function exact(iso: string): string {
  return new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

/** Re-renders every 15 s so relative times stay true. */
function useNow(): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 15_000);
    return () => clearInterval(t);
  }, []);
  return now;
}

export function Time({ at, empty = 'never' }: { at: string | null | undefined; empty?: string }) {
  const now = useNow();
  if (!at) return <span className="muted">{empty}</span>;
  return (
    <time dateTime={at} title={exact(at)}>
      {relative(at, Math.max(now, Date.now()))}
    </time>
  );
}

/**
 * A sentence from the server (an audit's verdict, a session's detail, an alert): the exact times
 * it carries (ISO 8601, UTC) are shown as every time in the console is, relative with the exact
 * time on hover, never as raw ISO.
 */
export function TextWithTimes({ text }: { text: string }) {
  const parts: ReactNode[] = [];
  const iso = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z/g;
  let last = 0;
  for (const m of text.matchAll(iso)) {
    parts.push(text.slice(last, m.index));
    parts.push(<Time key={m.index} at={m[0]} />);
    last = m.index + m[0].length;
  }
  parts.push(text.slice(last));
  return <>{parts}</>;
}
