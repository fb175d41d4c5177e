// Pull backups: the client hosts borgkeep backs up by connecting to them (their repository,
// schedule, next run, whether their SSH host key is accepted, their last job), "Run now" for
// operators, the pull key line to put on the clients, the jobs with their state in words, the
// progress of a running job as the live channel brings it, and one job's log (followed while the
// job runs) with its download. Hosts are added with the command line (borgkeep host add).
import { useEffect, useState } from 'react';
import { api } from '../api';
import { can, useMe } from '../app';
import { bytes, duration, Time } from '../format';
import { useAction, useLoad } from '../hooks';
import { useLive } from '../live';
import { CopyButton } from '../parts/copy-button';
import { PullJobLog } from '../parts/pull-job-log';
import { PULL_STATE_WORDS, pullJobActive, pullJobEnded, pullStateBadge, queuedJobWait, type PullHost, type PullJob } from '../pull-api';
import { Link, navigate, useSearch } from '../router';

const JOBS_SHOWN = 50;

export function PullPage() {
  const me = useMe();
  const live = useLive();
  const search = useSearch();
  const selected = Number(new URLSearchParams(search).get('job')) || null;
  const hosts = useLoad(() => api<{ hosts: PullHost[] }>('GET', '/pull-hosts'), [live.pullChanges]);
  const jobs = useLoad(() => api<{ jobs: PullJob[] }>('GET', `/pull-jobs?limit=${JOBS_SHOWN}`), [live.pullChanges]);
  const key = useLoad(() => api<{ line: string; fingerprint: string }>('GET', '/pull-key'), []);
  /** The newest word of each job: the live channel's when it has one. */
  const fresh = (j: PullJob): PullJob => live.pullJobs.find((l) => l.id === j.id) ?? live.pullEnded.find((l) => l.id === j.id) ?? j;
  const jobList = (jobs.data?.jobs ?? []).map(fresh);
  const running = live.pullJobs.filter(pullJobActive);
  // The queue, oldest first (the order the server takes it in).
  const waiting = jobList.filter((j) => j.state === 'queued').reverse();
  const selectedJob = selected === null ? null : (jobList.find((j) => j.id === selected) ?? live.pullJobs.find((j) => j.id === selected) ?? null);
  return (
    <>
      <h1>Pull backups</h1>
      <p className="muted">
        borgkeep connects to these hosts over SSH on their schedule and runs borg there. The hosts never hold the repository&apos;s key and cannot read any backup.
      </p>

      <section aria-labelledby="pull-running-title">
        <h2 id="pull-running-title">Running now</h2>
        {running.length === 0 ? (
          <p className="muted">No pull job is running. A running job shows its progress here, without a reload.</p>
        ) : (
          <ul className="pull-running">
            {running.map((j) => (
              <RunningJob key={j.id} job={j} />
            ))}
          </ul>
        )}
      </section>

      {waiting.length > 0 && (
        <section aria-labelledby="pull-waiting-title">
          <h2 id="pull-waiting-title">Waiting to start</h2>
          <ol className="pull-waiting">
            {waiting.map((j) => {
              const wait = queuedJobWait(j, running, Date.now());
              return (
                <li key={j.id} data-waiting-job={j.id}>
                  <strong>{j.host}</strong>
                  {j.repository && <> → {j.repository}</>} <span className="muted">job {j.id}, queued <Time at={j.queuedAt} /> by {triggerWords(j)}:</span> {wait.words}
                  {wait.until && (
                    <>
                      {' '}
                      <Time at={wait.until} />
                    </>
                  )}
                  .
                </li>
              );
            })}
          </ol>
        </section>
      )}

      <section aria-labelledby="pull-hosts-title">
        <h2 id="pull-hosts-title">Hosts</h2>
        {hosts.error && <p className="error">{hosts.error.message}</p>}
        {hosts.data && hosts.data.hosts.length === 0 && (
          <p className="muted">
            No hosts yet. Add one with <code>borgkeep host add NAME --address HOST --user USER --repo REPO --paths /etc,/home</code>.
          </p>
        )}
        {hosts.data && hosts.data.hosts.length > 0 && (
          <div className="table-wrap">
            <table className="cards pull-hosts">
              <thead>
                <tr>
                  <th scope="col">Host</th>
                  <th scope="col">Repository</th>
                  <th scope="col">Schedule</th>
                  <th scope="col">Host key</th>
                  <th scope="col">Last job</th>
                  {can(me, 'operator') && (
                    <th scope="col">
                      <span className="sr-only">Actions</span>
                    </th>
                  )}
                </tr>
              </thead>
              <tbody>
                {hosts.data.hosts.map((h) => (
                  <HostRow key={h.name} host={h} lastJob={h.lastJob && fresh(h.lastJob)} canRun={can(me, 'operator')} canAccept={can(me, 'admin')} onQueued={() => { jobs.reload(); hosts.reload(); }} onAccepted={hosts.reload} />
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>

      {selectedJob && <JobDetail job={selectedJob} />}
      {selected !== null && !selectedJob && jobs.data && <p className="error">There is no pull job {selected} among the last {JOBS_SHOWN}.</p>}

      <section aria-labelledby="pull-jobs-title">
        <h2 id="pull-jobs-title">Jobs</h2>
        {jobs.error && <p className="error">{jobs.error.message}</p>}
        {jobs.data && jobList.length === 0 && <p className="muted">No pull job yet.</p>}
        {jobList.length > 0 && (
          <div className="table-wrap">
            <table className="cards pull-jobs">
              <thead>
                <tr>
                  <th scope="col">Job</th>
                  <th scope="col">State</th>
                  <th scope="col">Started by</th>
                  <th scope="col">Archive</th>
                  <th scope="col">Started</th>
                  <th scope="col">Duration</th>
                  <th scope="col">Read</th>
                  <th scope="col">Files</th>
                  <th scope="col">
                    <span className="sr-only">Log</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {jobList.map((j) => (
                  <JobRow key={j.id} job={j} selected={j.id === selected} />
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>

      <section aria-labelledby="pull-key-title" className="card">
        <h2 id="pull-key-title">The pull key</h2>
        <p>
          On each host, put this line into the <code>~/.ssh/authorized_keys</code> of the user borgkeep logs in as. Its options let the key do nothing but what a pull job needs.
        </p>
        {key.error && <p className="error">{key.error.message}</p>}
        {key.data && (
          <>
            <pre className="pull-key" data-pull-key>
              {key.data.line}
            </pre>
            <p className="small">
              <CopyButton text={key.data.line} label="Copy the pull key line" /> <span className="muted mono">{key.data.fingerprint}</span>
            </p>
          </>
        )}
      </section>
    </>
  );
}

function StateBadge({ job }: { job: PullJob }) {
  return <span className={`badge ${pullStateBadge(job.state)}`}>{PULL_STATE_WORDS[job.state]}</span>;
}

const triggerWords = (j: PullJob) => (j.trigger === 'manual' ? 'a person' : j.attempt > 0 ? `the schedule (retry ${j.attempt})` : 'the schedule');

/** Seconds from start to end (or to now, while it runs); null before it started. */
function jobSeconds(j: PullJob, now: number): number | null {
  if (!j.startedAt) return null;
  return ((j.endedAt ? new Date(j.endedAt).getTime() : now) - new Date(j.startedAt).getTime()) / 1000;
}

function HostRow({ host, lastJob, canRun, canAccept, onQueued, onAccepted }: { host: PullHost; lastJob: PullJob | null; canRun: boolean; canAccept: boolean; onQueued: () => void; onAccepted: () => void }) {
  const action = useAction();
  const [said, setSaid] = useState<string | null>(null);
  const due = host.nextRunAt !== null && new Date(host.nextRunAt).getTime() <= Date.now();
  const runNow = async () => {
    setSaid(null);
    const r = await action.run(() => api<{ job: PullJob; existing: boolean }>('POST', `/pull-hosts/${encodeURIComponent(host.name)}/jobs`));
    if (r) {
      setSaid(r.existing ? `Job ${r.job.id} of ${host.name} is already waiting to start.` : `Job ${r.job.id} of ${host.name} is queued; the server starts it in a moment.`);
      onQueued();
    }
  };
  return (
    <tr data-host={host.name}>
      <th scope="row">
        {host.name}
        <div className="muted small mono">
          {host.user}@{host.address}
          {host.port !== 22 && `:${host.port}`}
        </div>
        <div className="muted small mono">{host.paths.join(', ')}</div>
        <div className="muted small" data-dedup>
          {!host.sendChunkIndex
            ? 'uploads everything at every job (no chunk index)'
            : host.keepFilesCache
              ? 'uploads only new data; reads only new and changed files'
              : 'uploads only new data; reads every file'}
        </div>
      </th>
      <td data-label="Repository">
        <Link href={`/repositories/${encodeURIComponent(host.repository)}`}>{host.repository}</Link>
      </td>
      <td data-label="Schedule">
        {host.schedule === null ? (
          <span className="muted">only when run by hand</span>
        ) : (
          <>
            <code>{host.schedule}</code>
            <div className="small">{due ? 'due now' : <>next <Time at={host.nextRunAt} /></>}</div>
          </>
        )}
      </td>
      <td data-label="Host key" data-host-key={host.hostKeyFingerprint ? 'accepted' : 'not-accepted'}>
        {host.hostKeyFingerprint ? (
          <>
            <span className="badge ok">accepted</span>
            <div className="muted small mono">{host.hostKeyFingerprint}</div>
          </>
        ) : (
          <>
            <span className="badge late">not accepted yet</span>
            {!host.offeredHostKey && <div className="muted small">Jobs fail until it is; the first job shows the key the host offers.</div>}
          </>
        )}
        {host.offeredHostKey && <OfferedKey host={host} canAccept={canAccept} onAccepted={onAccepted} />}
      </td>
      <td data-label="Last job">
        {lastJob ? (
          <>
            <StateBadge job={lastJob} /> <Time at={lastJob.endedAt ?? lastJob.startedAt ?? lastJob.queuedAt} />
            {lastJob.reason && <div className="small error">{lastJob.reason}</div>}
          </>
        ) : (
          <span className="muted">none yet</span>
        )}
      </td>
      {canRun && (
        <td>
          <button type="button" className="small" onClick={runNow} disabled={action.busy} aria-label={`Run now: ${host.name}`}>
            Run now
          </button>
          <div role="status" className="small">
            {said}
          </div>
          {action.error && <div className="error small">{action.error}</div>}
        </td>
      )}
    </tr>
  );
}

/** The key a host offered that is not the accepted one: to compare on the host, then accept (admins). */
function OfferedKey({ host, canAccept, onAccepted }: { host: PullHost; canAccept: boolean; onAccepted: () => void }) {
  const action = useAction();
  const offered = host.offeredHostKey!;
  const accept = async () => {
    const other = host.hostKeyFingerprint ? ` It replaces the accepted key ${host.hostKeyFingerprint}.` : '';
    if (!window.confirm(`Accept ${offered.fingerprint} as the host key of ${host.name}? Compare it on the host first (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub).${other}`)) return;
    if (await action.run(() => api('POST', `/pull-hosts/${encodeURIComponent(host.name)}/accept-key`, { fingerprint: offered.fingerprint }))) onAccepted();
  };
  return (
    <div className="small" data-offered-key={offered.fingerprint}>
      <span className={host.hostKeyFingerprint ? 'error' : undefined}>
        {host.hostKeyFingerprint ? 'The host offered a different key' : 'The host offered'} <Time at={offered.at} />:
      </span>{' '}
      <span className="mono">{offered.fingerprint}</span>
      <div className="muted">
        Compare it with <code>ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub</code> on the host
        {canAccept ? ' before you accept it.' : <>, then an admin accepts it (<code>borgkeep host accept-key {host.name} {offered.fingerprint}</code>).</>}
      </div>
      {canAccept && (
        <button type="button" className="small" onClick={accept} disabled={action.busy} aria-label={`Accept the key of ${host.name}`}>
          Accept the key
        </button>
      )}
      {action.error && <div className="error">{action.error}</div>}
    </div>
  );
}

function useNowEvery(ms: number, on: boolean): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!on) return;
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms, on]);
  return Math.max(now, Date.now());
}

function JobRow({ job, selected }: { job: PullJob; selected: boolean }) {
  const now = useNowEvery(5000, !pullJobEnded(job) && job.startedAt !== null);
  const seconds = jobSeconds(job, now);
  return (
    <tr data-job={job.id} data-state={job.state} aria-current={selected ? 'true' : undefined}>
      <th scope="row">
        {job.id} <span className="muted">· {job.host}</span>
      </th>
      <td data-label="State">
        <StateBadge job={job} />
        {job.reason && <div className="small error">{job.reason}</div>}
      </td>
      <td data-label="Started by">{triggerWords(job)}</td>
      <td data-label="Archive" className="mono small">
        {job.archive ?? <span className="muted">not named yet</span>}
      </td>
      <td data-label="Started">
        <Time at={job.startedAt} empty="not yet" />
      </td>
      <td data-label="Duration">{seconds === null ? <span className="muted">—</span> : duration(seconds)}</td>
      <td data-label="Read" className="job-bytes">
        {bytes(job.bytes)}
      </td>
      <td data-label="Files" className="job-files">
        {job.files.toLocaleString()}
      </td>
      <td>
        <Link href={`/pull?job=${job.id}`} aria-label={`Show the log of job ${job.id}`}>
          Log
        </Link>
      </td>
    </tr>
  );
}

function Progress({ job }: { job: PullJob }) {
  return (
    <p className="pull-progress" data-progress={job.id}>
      <strong className="job-bytes">{bytes(job.bytes)}</strong> read in <strong className="job-files">{job.files.toLocaleString()}</strong> {job.files === 1 ? 'file' : 'files'}
      {job.currentPath && (
        <>
          <br />
          <span className="muted small">now at </span>
          <span className="mono small job-path">{job.currentPath}</span>
        </>
      )}
    </p>
  );
}

function RunningJob({ job }: { job: PullJob }) {
  return (
    <li className="pull-job-running" data-running-job={job.id} data-state={job.state}>
      <StateBadge job={job} /> <strong>{job.host}</strong>
      {job.repository && (
        <>
          {' → '}
          <Link href={`/repositories/${encodeURIComponent(job.repository)}`}>{job.repository}</Link>
        </>
      )}{' '}
      <span className="muted">
        job {job.id}, started <Time at={job.startedAt} empty="just now" />
      </span>{' '}
      <Link href={`/pull?job=${job.id}`} aria-label={`Show the log of job ${job.id}`}>
        Log
      </Link>
      <Progress job={job} />
    </li>
  );
}

function JobDetail({ job }: { job: PullJob }) {
  return (
    <section aria-labelledby="pull-job-title" className="card pull-job-detail" data-job-detail={job.id}>
      <h2 id="pull-job-title">
        Job {job.id} of {job.host}
      </h2>
      <p>
        <StateBadge job={job} /> started by {triggerWords(job)}
        {job.archive && (
          <>
            , archive <span className="mono">{job.archive}</span>
          </>
        )}
        {job.repository && <> in {job.repository}</>}. Queued <Time at={job.queuedAt} />
        {job.endedAt && (
          <>
            , ended <Time at={job.endedAt} />
          </>
        )}
        .
      </p>
      {job.reason && <p className="error">{job.reason}</p>}
      <Progress job={job} />
      <PullJobLog jobId={job.id} ended={pullJobEnded(job)} />
      <p>
        <button type="button" className="link" onClick={() => navigate('/pull')}>
          Close the log
        </button>
      </p>
    </section>
  );
}
