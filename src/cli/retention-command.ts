// `borgkeep repo retention NAME [--keep-daily N ...] [--schedule CRON] | --off [--run-now]`: the
// repository's retention policy, which `borgkeep serve` runs on its schedule (borg's own prune and
// compact, with the key borgkeep holds). No options shows it; options set the whole policy (what
// is not given is no longer a rule); --run-now runs it once, here, and prints what it did.

import type { Command } from 'commander';

import { BorgkeepError, invalidInput } from '../errors.js';
import type { RetentionView } from '../retention/retention-service.js';
import { withStore, type CliContext } from './cli-context.js';
import { parseCount } from './input.js';
import { formatTime } from './output.js';
import { masterPassphrase } from './vault-commands.js';

interface RetentionOptions {
  keepLast?: string;
  keepHourly?: string;
  keepDaily?: string;
  keepWeekly?: string;
  keepMonthly?: string;
  keepYearly?: string;
  keepWithin?: string;
  prefix?: string;
  schedule?: string;
  off?: boolean;
  runNow?: boolean;
  vaultPassphraseFile?: string;
  json?: boolean;
}

const COUNTS = ['keepLast', 'keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepYearly'] as const;
const flag = (k: string) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

function viewJson(v: RetentionView) {
  return {
    repository: v.repository,
    keyHeld: v.keyHeld,
    policy: v.policy,
    nextRunAt: v.nextRunAt?.toISOString() ?? null,
  };
}

function showView(ctx: CliContext, v: RetentionView, describeRules: (rules: NonNullable<RetentionView['policy']>) => string): void {
  if (!v.policy) {
    ctx.out.line(`repository '${v.repository}' has no retention policy${v.keyHeld ? '' : " (and borgkeep does not hold its key, which a policy needs: 'borgkeep repo key'"}${v.keyHeld ? '' : ')'}.`);
    return;
  }
  const p = v.policy;
  ctx.out.line(`repository '${v.repository}': ${describeRules(p)}`);
  ctx.out.line(`  next run: ${formatTime(v.nextRunAt)} (server time)`);
  ctx.out.line(`  last run: ${p.lastRunAt ? `${formatTime(p.lastRunAt)}, ${p.lastResult}: ${p.lastDetail ?? ''}` : 'never'}`);
  ctx.out.line(`  set by ${p.updatedBy} at ${formatTime(p.updatedAt)}`);
  if (!v.keyHeld) ctx.out.line("  borgkeep no longer holds the repository's key: runs fail until it is handed over again ('borgkeep repo key').");
}

export function registerRetentionCommand(repo: Command, ctx: CliContext): void {
  repo
    .command('retention')
    .description("show or set the repository's retention policy, run by 'borgkeep serve' (borg prune with these flags, then borg compact)")
    .argument('<name>', 'repository name')
    .option('--keep-last <n>', 'keep the last N archives')
    .option('--keep-hourly <n>', 'keep N hourly archives')
    .option('--keep-daily <n>', 'keep N daily archives')
    .option('--keep-weekly <n>', 'keep N weekly archives')
    .option('--keep-monthly <n>', 'keep N monthly archives')
    .option('--keep-yearly <n>', 'keep N yearly archives')
    .option('--keep-within <duration>', 'keep every archive younger than this: 30d, 12H, 2w, 6m, 1y')
    .option('--prefix <prefix>', 'only archives whose names start with this')
    .option('--schedule <cron>', "when it runs, in server time (default '30 3 * * *': daily at 03:30)")
    .option('--off', 'turn retention off for the repository')
    .option('--run-now', 'run the policy once now, here, and print what it did')
    .option('--vault-passphrase-file <file>', 'the vault master passphrase, when the vault is sealed with one (for --run-now)')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: RetentionOptions) => {
      const given = COUNTS.filter((k) => opts[k] !== undefined);
      const setting = given.length > 0 || opts.keepWithin !== undefined || opts.prefix !== undefined || opts.schedule !== undefined;
      if (opts.off && (setting || opts.runNow)) throw invalidInput('--off turns retention off; give it alone');
      const input = {
        ...Object.fromEntries(given.map((k) => [k, parseCount(opts[k]!, flag(k))])),
        ...(opts.keepWithin !== undefined && { keepWithin: opts.keepWithin.trim() }),
        ...(opts.prefix !== undefined && { prefix: opts.prefix }),
        ...(opts.schedule !== undefined && { schedule: opts.schedule }),
      };
      const master = masterPassphrase(opts.vaultPassphraseFile, process.env);
      // Loaded here, never by the CLI's entry: the policy module brings zod and croner, which every
      // `borgkeep borg-serve` (one per backup session) would otherwise parse at start-up.
      const [{ createRetentionService }, { describeRules }, { openVault }, { createGuardDeps, borgCommand }] = await Promise.all([
        import('../retention/retention-service.js'),
        import('../retention/retention-policy.js'),
        import('../vault/vault.js'),
        import('../gateway/guard-runtime.js'),
      ]);
      await withStore(ctx, async (store) => {
        const dataDir = store.paths.root;
        const vault = openVault(dataDir, master === undefined ? {} : { masterPassphrase: master });
        const service = createRetentionService({
          store,
          vault,
          runner: {
            guard: createGuardDeps(dataDir, store, process.env, { vault }),
            dataDir,
            borg: borgCommand(process.env),
            path: process.env.PATH ?? '/usr/bin:/bin',
          },
          now: () => ctx.now(),
        });
        if (opts.off) {
          const removed = await service.remove(name);
          if (opts.json) ctx.out.json({ repository: name, removed });
          else ctx.out.line(removed ? `retention for repository '${name}' is off.` : `repository '${name}' had no retention policy.`);
          return;
        }
        if (setting) {
          const v = await service.set(name, input, 'cli');
          if (!opts.runNow) {
            if (opts.json) ctx.out.json(viewJson(v));
            else showView(ctx, v, describeRules);
            return;
          }
        }
        if (!opts.runNow) {
          const v = await service.show(name);
          if (opts.json) ctx.out.json(viewJson(v));
          else showView(ctx, v, describeRules);
          return;
        }
        const run = await service.runNow(name);
        if (opts.json) {
          ctx.out.json({ repository: name, ...run });
          if (run.result === 'error') process.exitCode = 1;
          return;
        }
        if (run.result === 'error') throw new BorgkeepError('BK_ERR_INTERNAL', `the retention run of '${name}' failed: ${run.detail}`);
        for (const a of run.pruned) ctx.out.line(`pruned ${a}`);
        // A deferred compaction is the run's warning, not a failure: the prune is done.
        ctx.out.line(`${run.result === 'warning' ? 'warning: ' : ''}${run.detail}`);
      });
    });
}
