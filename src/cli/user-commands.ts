// `borgkeep user add|list|passwd`: console users. A password comes from --password-file, else
// is asked for twice on a terminal (not echoed), else (a script, no terminal) is generated and
// printed once. Only its argon2id hash is stored.

import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { invalidInput } from '../errors.js';
import { withStore, type CliContext } from './cli-context.js';
import { formatTable, formatTime } from './output.js';

interface PasswordChoice {
  password: string;
  /** Generated here: print it, once. */
  generated: boolean;
}

export function registerUserCommands(program: Command, ctx: CliContext): void {
  const user = program.command('user').description('add and list web console users, set their passwords');

  user
    .command('add')
    .description('add a console user with a password (asked for on a terminal, read from --password-file, or generated and printed once)')
    .argument('<name>', 'user name')
    .requiredOption('--role <role>', 'admin, operator or viewer')
    .option('--password-file <file>', 'read the password from the first line of this file')
    .action(async (name: string, opts: { role: string; passwordFile?: string }) => {
      const [{ checkName }, { checkUserRole }] = await Promise.all([import('../store/names.js'), import('../store/user-store.js')]);
      checkName('user', name); // before asking for a password
      checkUserRole(opts.role);
      const { password, generated } = await choosePassword(ctx, opts.passwordFile);
      const hash = await hashPassword(password);
      const added = await withStore(ctx, (store) => store.addUser({ name, role: opts.role, passwordHash: hash }));
      ctx.out.line(`added user '${added.name}' (id ${added.id}) as ${added.role}.`);
      if (generated) ctx.out.line(`Its password, shown only now: ${password}`);
    });

  user
    .command('passwd')
    .description("set a console user's password (ends their console sessions)")
    .argument('<name>', 'user name')
    .option('--password-file <file>', 'read the password from the first line of this file')
    .action(async (name: string, opts: { passwordFile?: string }) => {
      await withStore(ctx, (store) => store.getUser(name)); // an unknown name before any question
      const { password, generated } = await choosePassword(ctx, opts.passwordFile);
      const hash = await hashPassword(password);
      await withStore(ctx, (store) => store.setPasswordHash(name, hash));
      ctx.out.line(`set the password of '${name}'; their console sessions have ended.`);
      if (generated) ctx.out.line(`The new password, shown only now: ${password}`);
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
          ['ID', 'NAME', 'ROLE', 'SIGNS IN WITH', 'PASSWORD', 'SECOND FACTOR', 'CREATED'],
          users.map((u) => [String(u.id), u.name, u.role, SIGN_IN[u.source], u.hasPassword ? 'set' : 'not set', u.totpEnabled ? 'on' : 'off', formatTime(u.createdAt)]),
        ),
      );
    });
}

/** How each kind of user signs in, in the console's words. */
const SIGN_IN = { local: 'password', oidc: 'OpenID sign-on', ldap: 'LDAP directory' } as const;

async function hashPassword(password: string): Promise<string> {
  const { createPasswordHasher } = await import('../api/auth/passwords.js');
  return (await createPasswordHasher()).hash(password);
}

async function choosePassword(ctx: CliContext, file: string | undefined): Promise<PasswordChoice> {
  const { checkPassword, generatePassword } = await import('../api/auth/passwords.js');
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw invalidInput(`cannot read the password file ${file}: ${code === 'ENOENT' ? 'there is no such file' : code === 'EACCES' ? 'permission denied' : (error as Error).message}`);
    }
    return { password: checkPassword(text.split(/\r?\n/)[0] ?? ''), generated: false };
  }
  if (ctx.stdin.isTTY) {
    const first = checkPassword(await askHidden(ctx, 'Password: '));
    if ((await askHidden(ctx, 'Again: ')) !== first) throw invalidInput('the two passwords differ; nothing was changed');
    return { password: first, generated: false };
  }
  return { password: generatePassword(), generated: true };
}

/** Reads one line from the terminal without echoing it. */
async function askHidden(ctx: CliContext, question: string): Promise<string> {
  const stdin = ctx.stdin;
  ctx.prompt.write(question);
  stdin.setRawMode(true);
  stdin.resume();
  try {
    return await new Promise<string>((resolve, reject) => {
      let text = '';
      const onData = (chunk: Buffer | string) => {
        for (const ch of chunk.toString('utf8')) {
          if (ch === '\r' || ch === '\n' || ch === '\u0004') {
            stdin.off('data', onData);
            ctx.prompt.write('\n');
            resolve(text);
            return;
          }
          if (ch === '\u0003') {
            stdin.off('data', onData);
            ctx.prompt.write('\n');
            reject(invalidInput('cancelled; nothing was changed'));
            return;
          }
          if (ch === '\u007f' || ch === '\b') text = text.slice(0, -1);
          else text += ch;
        }
      };
      stdin.on('data', onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
  }
}
