// `borgkeep user add|list`: console users. Registration only for now; setting a password
// comes with the web console.

import type { Command } from 'commander';
import { withStore, type CliContext } from './cli-context.js';
import { formatTable, formatTime } from './output.js';

export function registerUserCommands(program: Command, ctx: CliContext): void {
  const user = program.command('user').description('add and list web console users');

  user
    .command('add')
    .description('register a console user (passwords are set with the web console, which is not built yet)')
    .argument('<name>', 'user name')
    .requiredOption('--role <role>', 'admin, operator or viewer')
    .action(async (name: string, opts: { role: string }) => {
      const added = await withStore(ctx, (store) => store.addUser({ name, role: opts.role }));
      ctx.out.line(`added user '${added.name}' (id ${added.id}) as ${added.role}; it has no password yet.`);
    });

  user
    .command('list')
    .description('list console users')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const users = await withStore(ctx, (store) => store.listUsers());
      if (opts.json) {
        ctx.out.json({ users });
        return;
      }
      if (users.length === 0) {
        ctx.out.line('no users yet; add one with: borgkeep user add NAME --role admin');
        return;
      }
      ctx.out.line(
        formatTable(
          ['ID', 'NAME', 'ROLE', 'PASSWORD', 'CREATED'],
          users.map((u) => [String(u.id), u.name, u.role, u.hasPassword ? 'set' : 'not set', formatTime(u.createdAt)]),
        ),
      );
    });
}
