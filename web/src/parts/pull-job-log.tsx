// One pull job's log: its kept lines, then, while the job runs, the new ones every two seconds
// (GET /pull-jobs/:id/log?after=SEQ), and a link to download it as text. The lines are borg's
// messages and the runner's steps; nothing in them is secret.
import { useEffect, useRef, useState } from 'react';
import { api, ApiError } from '../api';
import { exact, relative } from '../format';
import type { PullJobState, PullLogLine } from '../pull-api';

const FOLLOW_MS = 2000;
/** Lines shown at most (a log keeps up to 10 000; the download has them all). */
const SHOWN = 1000;

export function PullJobLog({ jobId, ended }: { jobId: number; ended: boolean }) {
  const [lines, setLines] = useState<PullLogLine[]>([]);
  const [dropped, setDropped] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const [loaded, setLoaded] = useState(false);
  const box = useRef<HTMLOListElement>(null);
  // One clock for every line's relative time (a timer per line would be thousands of timers).
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = window.setInterval(() => setNow(Date.now()), 15_000);
    return () => window.clearInterval(t);
  }, []);
  /** Lines read since the log was opened; those beyond the shown ones are only in the download. */
  const [received, setReceived] = useState(0);
  const hidden = Math.max(0, received - lines.length);

  useEffect(() => {
    let stop = false;
    let timer: number | undefined;
    let last = 0;
    setLines([]);
    setReceived(0);
    setLoaded(false);
    setError(null);
    const read = async () => {
      try {
        const r = await api<{ job: { state: PullJobState }; lines: PullLogLine[]; dropped: number }>('GET', `/pull-jobs/${jobId}/log?after=${last}`);
        if (stop) return;
        if (r.lines.length > 0) {
          last = r.lines[r.lines.length - 1]!.seq;
          setLines((ls) => [...ls, ...r.lines].slice(-SHOWN));
          setReceived((n) => n + r.lines.length);
        }
        setDropped(r.dropped);
        setLoaded(true);
        setError(null);
        // Follows while the job runs; the read after its end has its last lines.
        if (r.job.state !== 'done' && r.job.state !== 'failed') timer = window.setTimeout(read, FOLLOW_MS);
      } catch (e) {
        if (stop) return;
        setError(e instanceof ApiError ? e.message : String(e));
        timer = window.setTimeout(read, FOLLOW_MS * 2);
      }
    };
    void read();
    return () => {
      stop = true;
      window.clearTimeout(timer);
    };
    // `ended` restarts the reading once more, so lines written just before the end are not missed.
  }, [jobId, ended]);

  // New lines scroll into view when the reader was at the bottom already.
  useEffect(() => {
    const el = box.current;
    if (el && el.scrollHeight - el.scrollTop - el.clientHeight < 80) el.scrollTop = el.scrollHeight;
  }, [lines]);

  return (
    <div className="pull-log">
      <h3 id={`pull-log-title-${jobId}`}>Log</h3>
      {error && <p className="error">{error}</p>}
      {dropped > 0 && <p className="muted small">{dropped.toLocaleString()} earlier {dropped === 1 ? 'line is' : 'lines are'} no longer kept.</p>}
      {hidden > 0 && <p className="muted small">Showing the last {SHOWN.toLocaleString()} lines; the download has the {hidden.toLocaleString()} before them too.</p>}
      {loaded && lines.length === 0 ? (
        <p className="muted">The log is empty.</p>
      ) : (
        <ol ref={box} className="pull-log-lines" aria-labelledby={`pull-log-title-${jobId}`} tabIndex={0} data-log-lines={lines.length}>
          {lines.map((l) => (
            <li key={l.seq}>
              <time className="muted small" dateTime={l.at} title={exact(l.at)}>
                {relative(l.at, Math.max(now, Date.now()))}
              </time>{' '}
              <span className="mono">{l.line}</span>
            </li>
          ))}
        </ol>
      )}
      <p>
        {!ended && <span className="muted small">Following the job: new lines appear as it runs. </span>}
        <a href={`/api/v1/pull-jobs/${jobId}/log.txt`} download={`borgkeep-pull-job-${jobId}.log`}>
          Download the log
        </a>
      </p>
    </div>
  );
}
