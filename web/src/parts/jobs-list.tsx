// The scheduler's jobs: what each does, when it runs next, its last run and result, and "Run now"
// for operators (the API waits for the run, so the result shows when it returns).
import { useState } from 'react';
import { api, type Job } from '../api';
import { can, useMe } from '../app';
import { Time } from '../format';
import { useAction, useLoad } from '../hooks';

export function JobsList() {
  const me = useMe();
  const jobs = useLoad(() => api<{ jobs: Job[] }>('GET', '/jobs'), []);
  return (
    <section aria-labelledby="jobs-title">
      <h2 id="jobs-title">Jobs</h2>
      <p className="muted small">borgkeep serve runs these by itself; a run missed while the server was down runs at its next start.</p>
      {jobs.error && <p className="error">{jobs.error.message}</p>}
      {jobs.data && (
        <div className="table-wrap">
          <table className="jobs">
            <thead>
              <tr>
                <th scope="col">Job</th>
                <th scope="col">Next run</th>
                <th scope="col">Last run</th>
                {can(me, 'operator') && (
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                )}
              </tr>
            </thead>
            <tbody>
              {jobs.data.jobs.map((j) => (
                <JobRow key={j.name} job={j} canRun={can(me, 'operator')} onRan={jobs.reload} />
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function JobRow({ job, canRun, onRan }: { job: Job; canRun: boolean; onRan: () => void }) {
  const action = useAction();
  const [ran, setRan] = useState<Job | null>(null);
  const j = ran && ran.lastFinishedAt && (!job.lastFinishedAt || ran.lastFinishedAt >= job.lastFinishedAt) ? ran : job;
  return (
    <tr data-job={j.name} data-result={j.lastResult ?? 'never'}>
      <th scope="row">
        <span className="mono">{j.name}</span>
        <div className="muted small">{j.description}</div>
      </th>
      <td>
        <Time at={j.nextRunAt} empty="not scheduled" />
      </td>
      <td>
        {j.running || action.busy ? (
          <span className="badge open">running</span>
        ) : j.lastResult ? (
          <span className={`badge ${j.lastResult === 'ok' ? 'ok' : 'late'}`}>{j.lastResult}</span>
        ) : null}{' '}
        <Time at={j.lastFinishedAt ?? j.lastStartedAt} empty="not run yet" />
        {j.lastDetail && <div className={`small ${j.lastResult === 'error' ? 'error' : 'muted'}`}>{j.lastDetail}</div>}
        {action.error && <div className="error small">{action.error}</div>}
      </td>
      {canRun && (
        <td>
          <button
            type="button"
            className="small"
            disabled={action.busy || j.running}
            onClick={async () => {
              const r = await action.run(() => api<{ job: Job }>('POST', `/jobs/${encodeURIComponent(j.name)}/run`));
              if (r) {
                setRan(r.job);
                onRan();
              }
            }}
          >
            Run now
          </button>
        </td>
      )}
    </tr>
  );
}
