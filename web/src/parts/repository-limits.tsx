// A repository's quota and expected backup interval, changed in the console (PATCH
// /repositories/:name). Sizes and durations are typed as on the command line (500G, 26h, 7d)
// and refused in the CLI's sentences. A quota below what the repository holds now is never set
// without a second, explicit yes: borg would refuse every backup that writes until prune and
// compact bring the repository under it.
import { useState, type FormEvent } from 'react';
import { api, type Repository } from '../api';
import { bytes, duration } from '../format';
import { useAction } from '../hooks';
import { FormError } from './form-error';

// The command line's syntax and sentences (src/cli/input.ts parseQuota and parseInterval).
const SIZE_FACTORS: Record<string, number> = { '': 1, K: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15 };
const DURATION_UNITS: Record<string, number> = { d: 86_400, h: 3600, m: 60, s: 1 };

function parseQuota(text: string): number | null {
  if (text.trim() === '' || text.trim().toLowerCase() === 'none') return null;
  const match = /^([0-9]+(?:\.[0-9]+)?)([KMGTP]?)$/i.exec(text.trim());
  if (!match) throw new Error(`the quota '${text}' is not a size; use a number with an optional K, M, G, T or P suffix, e.g. 500G`);
  const value = Math.floor(Number(match[1]) * SIZE_FACTORS[match[2]!.toUpperCase()]!);
  if (!Number.isSafeInteger(value)) throw new Error(`the quota '${text}' is too large`);
  if (value < 10_000_000) throw new Error(`the quota '${text}' is too small; borg needs at least 10M`);
  return value;
}

function parseInterval(text: string): number {
  const match = /^([0-9]{1,9})([smhd]?)$/.exec(text.trim());
  if (!match) throw new Error(`the interval '${text}' is not a duration; use minutes, hours or days, e.g. 90m, 26h or 7d`);
  const seconds = Number(match[1]) * DURATION_UNITS[match[2] || 's']!;
  // The store's sentence (repository-store.ts checkInterval), said before the request.
  if (seconds < 60 || seconds > 366 * 86_400) throw new Error(`the expected backup interval must be a whole number of seconds from 60 to 31622400, not ${seconds}`);
  return seconds;
}

/** The size as the CLI takes it back: whole units where they divide evenly. */
function sizeText(n: number | null): string {
  if (n === null) return '';
  for (const [unit, factor] of [['P', 1e15], ['T', 1e12], ['G', 1e9], ['M', 1e6], ['K', 1e3]] as const) if (n % factor === 0) return `${n / factor}${unit}`;
  return String(n);
}

function intervalText(seconds: number): string {
  for (const [unit, factor] of [['d', 86_400], ['h', 3600], ['m', 60]] as const) if (seconds % factor === 0) return `${seconds / factor}${unit}`;
  return `${seconds}s`;
}

export function RepositoryLimits({ repository, onChange }: { repository: Repository; onChange: () => void }) {
  const [quota, setQuota] = useState(sizeText(repository.quotaBytes));
  const [interval, setIntervalText] = useState(intervalText(repository.expectedIntervalSeconds));
  const [below, setBelow] = useState<{ quotaBytes: number; expectedIntervalSeconds: number } | null>(null);
  const [saved, setSaved] = useState(false);
  const action = useAction();
  const save = async (change: { quotaBytes: number | null; expectedIntervalSeconds: number }) => {
    setBelow(null);
    if (await action.run(() => api('PATCH', `/repositories/${encodeURIComponent(repository.name)}`, change))) {
      setSaved(true);
      onChange();
    }
  };
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setSaved(false);
    const change = await action.run(async () => ({ quotaBytes: parseQuota(quota), expectedIntervalSeconds: parseInterval(interval) }));
    if (!change) return;
    if (change.quotaBytes !== null && repository.sizeBytes !== null && change.quotaBytes < repository.sizeBytes) {
      setBelow({ quotaBytes: change.quotaBytes, expectedIntervalSeconds: change.expectedIntervalSeconds });
      return;
    }
    await save(change);
  };
  return (
    <section aria-labelledby="limits-title">
      <h2 id="limits-title">Quota and schedule</h2>
      <form className="inline-form" onSubmit={submit} aria-labelledby="limits-title">
        <label>
          Quota <span className="muted">(e.g. 500G; empty: none; now {repository.sizeBytes === null ? 'nothing stored' : `${bytes(repository.sizeBytes)} used`})</span>
          <input name="quota" value={quota} onChange={(e) => (setQuota(e.target.value), setBelow(null), setSaved(false))} spellCheck={false} />
        </label>
        <label>
          Expected backup every <span className="muted">(e.g. 26h or 7d; now {duration(repository.expectedIntervalSeconds)})</span>
          <input name="expectedInterval" value={interval} onChange={(e) => (setIntervalText(e.target.value), setBelow(null), setSaved(false))} spellCheck={false} />
        </label>
        <button type="submit" disabled={action.busy}>
          Save quota and schedule
        </button>
        <FormError error={action.error} />
        {saved && !action.error && (
          <p className="muted" role="status">
            Saved.
          </p>
        )}
      </form>
      {below && (
        <div className="quota-warning" role="alertdialog" aria-labelledby="quota-warning-title" aria-describedby="quota-warning-text">
          <h3 id="quota-warning-title">The new quota is below what the repository holds</h3>
          <p id="quota-warning-text">
            {repository.name} holds {bytes(repository.sizeBytes)} now; the quota would be {bytes(below.quotaBytes)}. borg refuses every backup that writes until prune and compact bring the repository
            under the quota.
          </p>
          <div className="row-actions">
            <button type="button" className="danger" onClick={() => void save(below)} autoFocus>
              Set the quota to {bytes(below.quotaBytes)} anyway
            </button>
            <button type="button" className="secondary" onClick={() => setBelow(null)}>
              Keep the current quota
            </button>
          </div>
        </div>
      )}
    </section>
  );
}
