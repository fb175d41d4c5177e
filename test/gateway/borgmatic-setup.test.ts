// The client set-up borgkeep hands out, run as given: `borgkeep repo setup --borgmatic 1.7` for an
// append key, against a real `borgkeep serve --public-host localhost` (embedded gateway), with
// Debian's borgmatic 1.7.7 and the real ssh client. The config, the known_hosts lines and the
// command line are the CLI's text unchanged (only the files' folder is chosen, with --config-dir):
// `borgmatic create check` succeeds with StrictHostKeyChecking=yes against those lines, the
// session list shows no refusal (the key was never asked to prune or compact), and with another
// host key in known_hosts ssh refuses to connect.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';

import { createBorgkeepEnv, PASSPHRASE, run, type BorgkeepEnv } from '../helpers/borgkeep-env.js';

let env: BorgkeepEnv;
let port: number;

beforeAll(async () => {
  env = createBorgkeepEnv('bm-setup', 'embedded', { serveArgs: ['--public-host', 'localhost'] });
  await env.cliOk(['repo', 'create', 'laptop']);
  await env.addKey('admin');
  await env.addKey('backup-only');
  await env.cliOk(['grant', 'admin', 'laptop', '--role', 'full']);
  await env.cliOk(['grant', 'backup-only', 'laptop', '--role', 'append']);
  port = (await env.frontEnd()).port;
  const init = await env.borg('admin', ['init', '--encryption=repokey-blake2', env.url('laptop')]);
  expect(init.code, init.stderr).toBe(0);
}, 60_000);
afterAll(() => env?.cleanup());

interface Setup {
  url: string;
  knownHosts: string;
  borgmatic: { '1.7': string; '1.8': string };
  run: { '1.7': string; '1.8': string };
  initialized: boolean;
}

/** Writes the set-up's files where it says they go and runs its command line with borgmatic. */
async function runSetup(setup: Setup, configDir: string, knownHosts = setup.knownHosts) {
  mkdirSync(configDir, { recursive: true, mode: 0o700 });
  writeFileSync(join(configDir, 'known_hosts'), `${knownHosts}\n`);
  writeFileSync(join(configDir, 'passphrase'), `${PASSPHRASE}\n`, { mode: 0o600 });
  writeFileSync(join(configDir, 'config.yaml'), setup.borgmatic['1.7']);
  const [cmd, ...args] = setup.run['1.7'].split(' ');
  expect(cmd).toBe('borgmatic');
  const client = join(env.root, 'borgmatic-client');
  mkdirSync(client, { recursive: true });
  // A fresh client: no BORG_RSH, no passphrase in the environment; all of it comes from the config.
  // This machine has no syslog socket: borgmatic is told not to log there, nothing else is added.
  return run('borgmatic', ['--config', join(configDir, 'config.yaml'), '--syslog-verbosity', '-1', ...args], {
    env: { PATH: process.env.PATH, HOME: client, BORG_BASE_DIR: client, LANG: 'C.UTF-8' },
  });
}

test('the serve banner and the CLI hints use the advertised host; a bad --public-host is one sentence', async () => {
  const log = (await env.frontEnd()).log();
  expect(log).toContain(`clients use: ssh://borg@localhost:${port}/./REPO (--public-host)`);
  expect(log).toContain(`borg init --encryption=repokey-blake2 ssh://borg@localhost:${port}/./REPO`);
  expect(log).toMatch(new RegExp(`\\[localhost\\]:${port} ssh-ed25519 AAAA`));
  expect(await env.cliOk(['repo', 'create', 'other'])).toContain(`borg init --encryption=repokey-blake2 ssh://borg@localhost:${port}/./other`);
  const text = await env.cliOk(['repo', 'setup', 'laptop', '--key', 'backup-only', '--borgmatic', '1.7']);
  expect(text).toContain(`repository URL: ssh://borg@localhost:${port}/./laptop`);
  expect(text).toMatch(new RegExp(`^\\[localhost\\]:${port} ssh-ed25519 AAAA`, 'm'));
  expect(text).toMatch(/^location:\n/m);
  const format = await env.cli(['repo', 'setup', 'laptop', '--key', 'backup-only', '--borgmatic', '2.0']);
  expect(format.stderr.trim()).toBe("borgkeep: --borgmatic: '2.0' is not 1.7 or 1.8");
  const bad = await env.cli(['serve', '--public-host', 'backup host', '--ssh-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0']);
  expect(bad.code).not.toBe(0);
  expect(bad.stderr.trim()).toMatch(/--public-host: 'backup host' is not HOST or HOST:PORT \(a DNS name or an address, e\.g\. backup\.example\.com/);
});

test("Debian's borgmatic 1.7.7 runs the CLI's 1.7 set-up of an append key as given, checking the host key strictly", async () => {
  const configDir = join(env.root, 'client-etc', 'borgmatic');
  const keyFile = join(env.root, 'ssh-keys', 'backup-only');
  const setup = JSON.parse(
    await env.cliOk(['repo', 'setup', 'laptop', '--key', 'backup-only', '--borgmatic', '1.7', '--identity-file', keyFile, '--config-dir', configDir, '--json']),
  ) as Setup;
  expect(setup.initialized).toBe(true);
  expect(setup.url).toBe(`ssh://borg@localhost:${port}/./laptop`);
  expect(setup.borgmatic['1.7']).not.toMatch(/^(retention:|\s*keep_)|borgmatic (init|prune|compact)/m);
  expect(setup.run['1.7']).toBe('borgmatic create check --verbosity 1');

  // Another host key in known_hosts: ssh refuses before it logs in, so no session reaches the guard.
  const sessionCount = async () => (JSON.parse(await env.cliOk(['ledger', '--json', '--repo', 'laptop', '--limit', '1000'])) as { sessions: unknown[] }).sessions.length;
  const sessionsBefore = await sessionCount();
  const wrongKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl';
  const refused = await runSetup(setup, configDir, `[localhost]:${port} ${wrongKey}`);
  expect(refused.code, `${refused.stdout}\n${refused.stderr}`).not.toBe(0);
  expect(await sessionCount()).toBe(sessionsBefore);

  const before = await env.borg('admin', ['list', '--short', env.url('laptop')]);
  const r = await runSetup(setup, configDir);
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
  const after = await env.borg('admin', ['list', '--short', env.url('laptop')]);
  expect(after.stdout.split('\n').filter(Boolean).length).toBe(before.stdout.split('\n').filter(Boolean).length + 1);

  // The append key ran create and check only: every session ok, not one refusal.
  const { sessions } = JSON.parse(await env.cliOk(['ledger', '--json', '--repo', 'laptop'])) as {
    sessions: Array<{ keyName: string | null; result: string; denials: unknown[] }>;
  };
  const mine = sessions.filter((s) => s.keyName === 'backup-only');
  expect(mine.length).toBeGreaterThanOrEqual(2);
  expect(mine.map((s) => s.result)).toEqual(mine.map(() => 'ok'));
  expect(sessions.flatMap((s) => s.denials)).toEqual([]);
});
