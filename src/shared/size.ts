// The one way borgkeep writes a size for people, in the console, the CLI's human output and the
// alerts' sentences alike: decimal units (borg's own, 1 KB = 1000 B), one decimal under 10 and
// whole numbers above ("1.6 TB", "85 GB", "999 B"). No imports, so both the server's build
// (NodeNext) and the console's (Vite) compile it; the console imports it from web/src/format.tsx.
// It must never print a raw byte count above 999 or a binary unit.

const UNITS = ['B', 'KB', 'MB', 'GB', 'TB', 'PB', 'EB'];

export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const sign = n < 0 ? '-' : '';
  let v = Math.abs(n);
  let i = 0;
  while (v >= 1000 && i < UNITS.length - 1) {
    v /= 1000;
    i += 1;
  }
  if (i === 0) return `${sign}${Math.round(v)} B`;
  let text = v.toFixed(v < 10 ? 1 : 0);
  // 9.96 rounds to "10.0" and 999.6 to "1000": write them as the next step would.
  if (Number(text) >= 1000 && i < UNITS.length - 1) {
    i += 1;
    text = (Number(text) / 1000).toFixed(1);
  } else if (v < 10 && Number(text) >= 10) text = '10';
  return `${sign}${text} ${UNITS[i]}`;
}
