// Retention policies as the CLI, the API, the config file and `borgkeep serve`'s job use them:
// set (only for a repository whose key borgkeep holds), show with the next run, turn off, run now,
// and run what is due. One run per repository at a time in this process; borg's lock keeps runs
// of different processes apart.

import { BorgkeepError, invalidInput } from '../errors.js';
import type { NodeStore } from '../store/node-store.js';
import { localRepositories } from '../store/placement.js';
import type { RepositoryStore } from '../store/repository-store.js';
import type { RetentionStore } from '../store/retention-store.js';
import type { Repository } from '../store/types.js';
import { isDue, nextRun, parseRetentionRules, type RetentionPolicy, type RetentionRules } from './retention-policy.js';
import { runRetention, type RetentionRun, type RetentionRunDeps } from './run-retention.js';

export interface RetentionServiceDeps {
  readonly store: RetentionStore & Pick<RepositoryStore, 'getRepository' | 'listRepositoryRecords'> & Partial<Pick<NodeStore, 'repositoryNodes'>>;
  readonly vault: RetentionRunDeps['vault'];
  readonly now: () => Date;
  /** What runs need (the guard, borg); left out (the API alone), policies can be set but not run. */
  readonly runner?: Omit<RetentionRunDeps, 'vault' | 'now'>;
  /** Runs one repository's retention (tests replace it); default runRetention. */
  readonly run?: typeof runRetention;
}

export interface RetentionView {
  readonly repository: string;
  readonly keyHeld: boolean;
  readonly policy: RetentionPolicy | null;
  readonly nextRunAt: Date | null;
}

export function createRetentionService(deps: RetentionServiceDeps) {
  const running = new Map<number, Promise<RetentionRun>>();
  const run = deps.run ?? runRetention;

  const view = async (repository: Repository): Promise<RetentionView> => {
    const policy = await deps.store.getRetentionPolicy(repository.id);
    return {
      repository: repository.name,
      keyHeld: deps.vault.has(repository.dirName),
      policy,
      nextRunAt: policy ? nextRun(policy.schedule, deps.now()) : null,
    };
  };

  /** Runs the repository's policy now (or joins the run under way) and records its result. */
  const runOne = (repository: Repository, policy: RetentionPolicy): Promise<RetentionRun> => {
    const under = running.get(repository.id);
    if (under) return under;
    const at = deps.now();
    const runner = deps.runner;
    if (!runner) return Promise.reject(new BorgkeepError('BK_ERR_INTERNAL', 'retention runs only in borgkeep serve or with borgkeep repo retention --run-now'));
    const p = run({ ...runner, vault: deps.vault, now: deps.now }, repository, policy)
      .then(async (r) => {
        await deps.store.recordRetentionRun(repository.id, { at, result: r.result, detail: r.detail });
        return r;
      })
      .finally(() => running.delete(repository.id));
    running.set(repository.id, p);
    return p;
  };

  return {
    async show(name: string): Promise<RetentionView> {
      return view(await deps.store.getRepository(name));
    },

    async list(): Promise<RetentionView[]> {
      return Promise.all((await deps.store.listRepositoryRecords()).map(view));
    },

    /** Sets the whole policy (`input`: the API's shape); refused without a held key. */
    async set(name: string, input: unknown, by: string, where = ''): Promise<RetentionView> {
      const repository = await deps.store.getRepository(name);
      const rules = parseRetentionRules(input, where);
      if (!deps.vault.has(repository.dirName)) {
        throw new BorgkeepError(
          'BK_ERR_CONFLICT',
          `${where}borgkeep does not hold the key of repository '${repository.name}', so it cannot run borg prune on it; hand it over first with 'borgkeep repo key ${repository.name} --passphrase-file FILE'`,
        );
      }
      // The same policy again (the config file at every start) is no change: its last change
      // stays, so a run missed while the server was down is still due.
      const current = await deps.store.getRetentionPolicy(repository.id);
      const same = current !== null && (Object.keys(rules) as Array<keyof RetentionRules>).every((k) => current[k] === rules[k]);
      if (!same) await deps.store.setRetentionPolicy(repository.id, rules, by);
      return view(repository);
    },

    /** Turns retention off; false when there was no policy. */
    async remove(name: string): Promise<boolean> {
      const repository = await deps.store.getRepository(name);
      return deps.store.removeRetentionPolicy(repository.id);
    },

    async runNow(name: string): Promise<RetentionRun> {
      const repository = await deps.store.getRepository(name);
      const policy = await deps.store.getRetentionPolicy(repository.id);
      if (!policy) throw invalidInput(`repository '${repository.name}' has no retention policy; set one with 'borgkeep repo retention ${repository.name} --keep-daily N ...'`);
      return runOne(repository, policy);
    },

    /** The scheduler's tick: runs every policy whose scheduled time has come, one after another. */
    async runDue(): Promise<string> {
      const policies = await deps.store.listRetentionPolicies();
      const now = deps.now();
      const due = policies.filter((p) => isDue(p, now) && !running.has(p.repositoryId));
      if (due.length === 0) return policies.length === 0 ? 'no retention policies' : 'nothing due';
      // A repository on a storage node has its files there: its policy is not run from this data directory (docs/postgresql.md).
      const byId = new Map((await localRepositories(deps.store)).map((r) => [r.id, r]));
      const lines: string[] = [];
      let failed = false;
      for (const policy of due) {
        const repository = byId.get(policy.repositoryId);
        if (!repository) continue;
        const r = await runOne(repository, policy);
        failed ||= r.result === 'error';
        lines.push(`${repository.name}: ${r.detail}`);
      }
      // A failed run is the job's failure too (the job list shows it); its detail says which.
      if (failed) throw new Error(lines.join('; '));
      return lines.join('; ');
    },
  };
}

export type RetentionService = ReturnType<typeof createRetentionService>;
