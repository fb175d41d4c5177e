// `borgkeep grant KEY REPO --role ...` and `borgkeep revoke KEY REPO`: what a key may do on a
// repository. The guard reads these grants at the start of every session.

import type { Command } from 'commander';
import { formatDuration } from '../archive/manifest-change.js';
import { checkRole, type GrantTerms } from '../store/grant-terms.js';
import type { Grant } from '../store/types.js';
import { withStore, type CliContext } from './cli-context.js';
import { parseCidrList, parseCount, parseDuration, parseTime } from './input.js';

interface GrantOptions {
  role: string;
  writesPerDay?: string;
  from?: string;
  expires?: string;
  minAge?: string;
  keepLast?: string;
  prefix?: string;
  maxRemovalsPerDay?: string;
  verifyObjects?: boolean;
}
import { formatTime, plural } from './output.js';

export function registerGrantCommands(program: Command, ctx: CliContext): void {
  program
    .command('grant')
    .description('give a key a role on a repository, or replace the role and limits it has')
    .argument('<key>', 'key name or id')
    .argument('<repo>', 'repository name')
    .requiredOption('--role <role>', 'read, append, prune or full')
    .option('--writes-per-day <n>', 'at most N backups per 24 hours (sessions that commit new data; prune, compact and reads do not count)')
    .option('--from <cidrs>', 'allowed client addresses, e.g. 192.0.2.0/24,2001:db8::/32 (a bare address is one host)')
    .option('--expires <time>', 'expiry: 2030-12-31 (midnight UTC), 2030-12-31T18:00Z, or from now: 30d, 12h, 90m')
    .option('--min-age <duration>', "prune: remove only archives the server first saw at least this long ago, e.g. 30d, 12h, 90m (enforced when borgkeep holds the repository's key)")
    .option('--keep-last <n>', "prune: never remove the N newest archives (of --prefix), by the server's first sighting")
    .option('--prefix <p>', 'prune: remove only archives whose names start with P, e.g. host1-')
    .option('--max-removals-per-day <n>', 'prune: remove at most N archives per UTC day')
    .option('--verify-objects', "append, prune, full: check every put's id against its content with the repository's key")
    .action(async (keyRef: string, repoName: string, opts: GrantOptions) => {
      const terms: GrantTerms = {
        role: checkRole(opts.role),
        writesPerDay: opts.writesPerDay === undefined ? null : parseCount(opts.writesPerDay, '--writes-per-day'),
        fromCidrs: opts.from === undefined ? null : parseCidrList(opts.from),
        expiresAt: opts.expires === undefined ? null : parseTime(opts.expires, ctx.now()),
        minAgeSeconds: opts.minAge === undefined ? null : parseDuration(opts.minAge, '--min-age'),
        keepLast: opts.keepLast === undefined ? null : parseCount(opts.keepLast, '--keep-last'),
        prefix: opts.prefix ?? null,
        maxRemovalsPerDay: opts.maxRemovalsPerDay === undefined ? null : parseCount(opts.maxRemovalsPerDay, '--max-removals-per-day'),
        verifyObjects: opts.verifyObjects === true,
      };
      const { grant, replaced, keyName } = await withStore(ctx, (store) => store.setGrant(keyRef, repoName, terms));
      const limits = describeLimits(grant);
      ctx.out.line(
        replaced
          ? `replaced the grant of key '${keyName}' on repository '${repoName}': now ${grant.role}${limits}.`
          : `granted ${grant.role} on repository '${repoName}' to key '${keyName}'${limits}.`,
      );
    });

  program
    .command('revoke')
    .description("remove a key's grant on a repository")
    .argument('<key>', 'key name or id')
    .argument('<repo>', 'repository name')
    .action(async (keyRef: string, repoName: string) => {
      const { grant, keyName } = await withStore(ctx, (store) => store.removeGrant(keyRef, repoName));
      ctx.out.line(`removed the ${grant.role} grant of key '${keyName}' on repository '${repoName}'.`);
    });
}

function describeLimits(grant: Grant): string {
  const limits: string[] = [];
  if (grant.writesPerDay !== null) limits.push(`${plural(grant.writesPerDay, 'backup')} per day`);
  if (grant.fromCidrs !== null) limits.push(`from ${grant.fromCidrs.join(', ')}`);
  if (grant.expiresAt !== null) limits.push(`until ${formatTime(grant.expiresAt)}`);
  const rules = archiveRules(grant);
  if (rules.length > 0) limits.push(rules.join(', '));
  return limits.length === 0 ? '' : ` (${limits.join('; ')})`;
}

/** A grant's archive rules as the command line writes them: "--min-age 30d", "--keep-last 7", ... */
export function archiveRules(grant: Grant): string[] {
  const rules: string[] = [];
  if (grant.minAgeSeconds !== null) rules.push(`--min-age ${formatDuration(grant.minAgeSeconds)}`);
  if (grant.keepLast !== null) rules.push(`--keep-last ${grant.keepLast}`);
  if (grant.prefix !== null) rules.push(`--prefix ${grant.prefix}`);
  if (grant.maxRemovalsPerDay !== null) rules.push(`--max-removals-per-day ${grant.maxRemovalsPerDay}`);
  if (grant.verifyObjects) rules.push('--verify-objects');
  return rules;
}
