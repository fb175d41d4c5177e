// `borgkeep grant KEY REPO --role ...` and `borgkeep revoke KEY REPO`: what a key may do on a
// repository. The guard reads these grants at the start of every session.

import type { Command } from 'commander';
import { checkRole, type GrantTerms } from '../store/grant-terms.js';
import type { Grant } from '../store/types.js';
import { withStore, type CliContext } from './cli-context.js';
import { parseCidrList, parseCount, parseTime } from './input.js';
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
    .action(async (keyRef: string, repoName: string, opts: { role: string; writesPerDay?: string; from?: string; expires?: string }) => {
      const terms: GrantTerms = {
        role: checkRole(opts.role),
        writesPerDay: opts.writesPerDay === undefined ? null : parseCount(opts.writesPerDay, '--writes-per-day'),
        fromCidrs: opts.from === undefined ? null : parseCidrList(opts.from),
        expiresAt: opts.expires === undefined ? null : parseTime(opts.expires, ctx.now()),
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
  return limits.length === 0 ? '' : ` (${limits.join('; ')})`;
}
