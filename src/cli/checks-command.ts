// `borgkeep repo checks NAME [--require PATTERN ...] [--max-count-change PCT] [--max-size-change PCT]
// [--max-changed PCT] [--max-new-data PCT] | --show | --clear [--json]`: the rules each new archive
// of the repository must pass, which `borgkeep serve` checks after each backup (src/checks). No
// rule option (or --show) shows them; rule options set the whole set (what is not given is no
// longer a rule), as `repo retention` does; --clear removes them (new archives are still checked
// for being readable).

import type { Command } from 'commander';

import { invalidInput } from '../errors.js';
import { withStore, type CliContext } from './cli-context.js';
import { formatTime } from './output.js';

interface ChecksOptions {
  require?: string[];
  maxCountChange?: string;
  maxSizeChange?: string;
  maxChanged?: string;
  maxNewData?: string;
  show?: boolean;
  clear?: boolean;
  json?: boolean;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function registerChecksCommand(repo: Command, ctx: CliContext): void {
  repo
    .command('checks')
    .description("show or set the rules each new archive of the repository must pass, checked by 'borgkeep serve' after each backup")
    .argument('<name>', 'repository name')
    .option('--require <pattern>', "a path every new archive must hold (shell-style: 'etc/passwd', 'home/*/'; a trailing / matches folders only); repeat for more", collect)
    .option('--max-count-change <pct>', 'the most the file count may differ from the previous archive of the same prefix, per cent')
    .option('--max-size-change <pct>', 'the most the original size may differ from the previous archive of the same prefix, per cent')
    .option('--max-changed <pct>', 'the largest share of files that may be new or have new content, per cent')
    .option('--max-new-data <pct>', 'the largest share of bytes that may be in chunks the previous archive did not reference, per cent')
    .option('--show', 'show the rules (the default without rule options)')
    .option('--clear', 'remove the rules')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: ChecksOptions) => {
      const setting = opts.require !== undefined || [opts.maxCountChange, opts.maxSizeChange, opts.maxChanged, opts.maxNewData].some((v) => v !== undefined);
      if (opts.clear && (setting || opts.show)) throw invalidInput('--clear removes the rules; give it alone');
      if (opts.show && setting) throw invalidInput('--show shows the rules; give it without rule options');
      // Loaded here, never by the CLI's entry: the rules bring the path matcher of src/browse.
      const { parseCheckRules, describeCheckRules, NO_RULES } = await import('../checks/check-rules.js');
      const rules = setting
        ? parseCheckRules({ requiredPaths: opts.require ?? [], maxCountChange: opts.maxCountChange, maxSizeChange: opts.maxSizeChange, maxChanged: opts.maxChanged, maxNewData: opts.maxNewData })
        : null;
      await withStore(ctx, async (store) => {
        const repository = await store.getRepository(name);
        if (opts.clear) {
          const removed = await store.removeCheckRules(repository.id);
          if (opts.json) ctx.out.json({ repository: repository.name, removed });
          else ctx.out.line(removed ? `the archive check rules of '${repository.name}' are removed; new archives are still checked for being readable.` : `repository '${repository.name}' had no archive check rules.`);
          return;
        }
        if (rules) await store.setCheckRules(repository.id, rules, 'cli');
        const stored = await store.getCheckRules(repository.id);
        const verdicts = (await store.listArchiveChecks(repository.id)).filter((v) => v.goneAt === null);
        const count = (verdict: string) => verdicts.filter((v) => v.verdict === verdict).length;
        if (opts.json) {
          ctx.out.json({
            repository: repository.name,
            rules: stored && {
              requiredPaths: stored.requiredPaths,
              maxCountChange: stored.maxCountChange,
              maxSizeChange: stored.maxSizeChange,
              maxChanged: stored.maxChanged,
              maxNewData: stored.maxNewData,
              updatedAt: stored.updatedAt.toISOString(),
              updatedBy: stored.updatedBy,
            },
            description: describeCheckRules(stored ?? NO_RULES),
            passed: count('passed'),
            failed: count('failed'),
            skipped: count('skipped'),
          });
          return;
        }
        ctx.out.line(`repository '${repository.name}': each new archive must ${describeCheckRules(stored ?? NO_RULES)}.`);
        if (stored) ctx.out.line(`  set by ${stored.updatedBy} at ${formatTime(stored.updatedAt)}`);
        ctx.out.line(`  archives checked: ${count('passed')} passed, ${count('failed')} failed${count('skipped') > 0 ? `, ${count('skipped')} from before the first check not checked` : ''}`);
      });
    });
}
