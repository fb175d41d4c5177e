// One pull job's log: its kept lines, then, while the job runs, the new ones every two seconds
// (GET /pull-jobs/:id/log?after=SEQ), and a link to download it as text. The lines are borg's
// messages and the runner's steps; nothing in them is secret.
import { useEffect, useRef, useState } from 'react';
import { api, ApiError } from '../api';
import { Time } from '../format';
import type { PullJobState, PullLogLine } from '../pull-api';

const FOLLOW_MS = 2000;

export function PullJobLog({ jobId, ended }: { jobId: number; ended: boolean }) {
  const [lines, setLines] = useState<PullLogLine[]>([]);
  const [dropped, setDropped] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const [loaded, setLoaded] = useState(false);
  const box = useRef<HTMLOListElement>(null);

  useEffect(() => {
    let stop = false;
    let timer: number | undefined;
    let last = 0;
    setLines([]);
    setLoaded(false);
    setError(null);
    const read = async () => {
      try {
        const r = await api<{ job: { state: PullJobState }; lines: PullLogLine[]; dropped: number }>('GET', `/pull-jobs/${jobId}/log?after=${last}`);
        if (stop) return;
        if (r.lines.length > 0) {
          last = r.lines[r.lines.length - 1]!.seq;
          setLines((ls) => [...ls, ...r.lines]);
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
      {loaded && lines.length === 0 ? (
        <p className="muted">The log is empty.</p>
      ) : (
        <ol ref={box} className="pull-log-lines" aria-labelledby={`pull-log-title-${jobId}`} tabIndex={0} data-log-lines={lines.length}>
          {lines.map((l) => (
            <li key={l.seq}>
              <span className="muted small">
                <Time at={l.at} />
              </span>{' '}
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
