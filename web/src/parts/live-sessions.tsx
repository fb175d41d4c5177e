// Sessions running now and those that just ended, from the live event stream.
import type { Session } from '../api';
import { bytes, TextWithTimes, Time } from '../format';
import { useLiveFor } from '../live';
import { Link } from '../router';

export function LiveSessions({ repository = null }: { repository?: string | null }) {
  const live = useLiveFor(repository);
  return (
    <section className="live" aria-labelledby="live-title">
      <h2 id="live-title">
        Live <span className={`live-dot ${live.connected ? 'on' : ''}`} aria-hidden="true" />
      </h2>
      <div aria-live="polite">
        {live.open.length === 0 && live.ended.length === 0 ? (
          <p className="muted">No backup is running{repository ? ' on this repository' : ''}. Sessions show up here as they start, without a reload.</p>
        ) : (
          <ul className="sessions">
            {live.open.map((s) => (
              <SessionRow key={s.id} s={s} showRepository={repository === null} />
            ))}
            {live.ended.map((s) => (
              <SessionRow key={s.id} s={s} showRepository={repository === null} />
            ))}
          </ul>
        )}
      </div>
    </section>
  );
}

function SessionRow({ s, showRepository }: { s: Session; showRepository: boolean }) {
  return (
    <li className={`session ${s.result}`} data-session={s.id} data-result={s.result}>
      <span className={`badge ${s.result}`}>{s.result === 'open' ? 'running' : s.result}</span>{' '}
      <strong>{s.keyName ?? 'unknown key'}</strong>
      {showRepository && s.repositoryName && (
        <>
          {' → '}
          <Link href={`/repositories/${encodeURIComponent(s.repositoryName)}`}>{s.repositoryName}</Link>
        </>
      )}
      {s.role && <span className="muted"> ({s.role})</span>} <span className="bytes-in">{bytes(s.bytesIn)} in</span>
      <span className="muted"> · {bytes(s.bytesOut)} out · </span>
      {s.result === 'open' ? (
        <span className="muted">
          started <Time at={s.startedAt} />
        </span>
      ) : (
        <span className="muted">
          ended <Time at={s.endedAt} />
        </span>
      )}
      {s.detail && <div className="muted small"><TextWithTimes text={s.detail} /></div>}
    </li>
  );
}
