#!/usr/bin/env node
// `npm start` on a fresh Debian/Ubuntu machine: installs what is missing (node modules, the
// build, borgbackup from apt when run as root), prepares the data directory, prints what to type
// next, then runs `borgkeep serve` with its embedded defaults (SSH gateway on port 2222) in the
// foreground. Arguments after `npm start --` go to `borgkeep serve`.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { build } from './build.mjs';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const say = (line) => process.stdout.write(`${line}\n`);
const fail = (line) => {
  process.stderr.write(`npm start: ${line}\n`);
  process.exit(1);
};
const run = (cmd, args, opts = {}) => spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

// 1. Node modules.
if (!existsSync(join(root, 'node_modules', '.package-lock.json'))) {
  say('Installing node modules (better-sqlite3 compiles from source: about two minutes)...');
  if (run('npm', ['ci', '--no-audit', '--no-fund']).status !== 0) fail('npm ci failed; see the output above.');
}

// 2. The build (CLI and console), when any source is newer than it.
function newest(dir) {
  let t = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    t = Math.max(t, st.isDirectory() ? newest(p) : st.mtimeMs);
  }
  return t;
}
const entry = join(root, 'dist', 'cli', 'borgkeep.mjs');
const built = Math.min(existsSync(entry) ? statSync(entry).mtimeMs : 0, existsSync(join(root, 'dist', 'web', 'index.html')) ? statSync(join(root, 'dist', 'web', 'index.html')).mtimeMs : 0);
if (built < Math.max(newest(join(root, 'src')), newest(join(root, 'web')))) {
  say('Building...');
  const error = await build();
  if (error) fail(`${error}.`);
}

// 3. borg itself.
if (!has('borg')) {
  if (process.getuid?.() === 0 && has('apt-get')) {
    say('Installing borgbackup from apt...');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    if (run('apt-get', ['update', '-qq'], { env }).status !== 0 || run('apt-get', ['install', '-y', '-qq', 'borgbackup'], { env }).status !== 0) {
      fail('installing borgbackup with apt-get failed; see the output above.');
    }
  } else {
    fail('borg is not installed: install borgbackup 1.2 or later (on Debian/Ubuntu: sudo apt-get install borgbackup) and run npm start again.');
  }
}

// 4. The data directory, and what to do next.
const dataDir = resolve(process.env.BORGKEEP_DATA_DIR || join(root, 'borgkeep-data'));
const bk = join(root, 'bin', 'borgkeep');
const list = spawnSync(process.execPath, [bk, '--data-dir', dataDir, 'repo', 'list'], { encoding: 'utf8' });
if (list.status !== 0) fail(list.stderr.trim() || 'borgkeep could not open its data directory.');
const borgVersion = spawnSync('borg', ['--version'], { encoding: 'utf8' }).stdout.trim();

say('');
say(`borgkeep is ready (${borgVersion}); data directory: ${dataDir}`);
say('');
say(list.stdout.trimEnd() || 'No repositories yet.');
say('');
say('To let a machine back up, in another terminal:');
say(`  ${bk} --data-dir ${dataDir} repo create REPO`);
say(`  ${bk} --data-dir ${dataDir} key add NAME --file ~/.ssh/id_ed25519.pub --repo REPO --role full`);
say('  then on that machine: borg init -e repokey ssh://borg@HOST:2222/./REPO');
say('');

// 5. The server itself, in the foreground: `borgkeep serve` with the embedded defaults (the SSH
// gateway on 0.0.0.0:2222, or BORGKEEP_SSH_LISTEN). Ctrl-C stops it gracefully.
const server = spawn(process.execPath, [bk, '--data-dir', dataDir, 'serve', ...process.argv.slice(2)], { cwd: root, stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.kill(sig));
server.on('exit', (code, signal) => process.exit(code ?? (signal ? 0 : 1)));
