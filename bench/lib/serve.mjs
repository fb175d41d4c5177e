// A running `borgkeep serve` on a benchmark's data directory (SSH and HTTP on loopback, free
// ports), logged in over the API as its first admin (whose one-time password serve writes to
// the data directory's first-admin-password file when stderr is no terminal).

import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { BORGKEEP } from './common.mjs';

export async function startLoggedInServe(dataDir) {
  const server = spawn(process.execPath, [BORGKEEP, '--data-dir', dataDir, 'serve', '--ssh-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const kill = () => server.kill('SIGKILL');
  process.once('exit', kill);
  let out = '';
  server.stdout.on('data', (d) => (out += d));
  server.stderr.on('data', (d) => (out += d));
  const passwordFile = join(dataDir, 'first-admin-password');
  for (let i = 0; !(/HTTP API listening on http:\/\/\S+/.test(out) && existsSync(passwordFile)); i++) {
    if (i > 400 || server.exitCode !== null) throw new Error(`borgkeep serve did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const http = /HTTP API listening on (http:\/\/[^/\s]+)/.exec(out)[1];
  const password = readFileSync(passwordFile, 'utf8').trim();
  const login = await fetch(`${http}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'admin', password }) });
  if (login.status !== 200) throw new Error(`logging in as the first admin failed (${login.status}): ${await login.text()}`);
  const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0];
  const { csrfToken } = await login.json();
  const call = (method, path, body) =>
    fetch(`${http}/api/v1${path}`, { method, headers: { cookie, 'x-csrf-token': csrfToken, ...(body && { 'content-type': 'application/json' }) }, body: body && JSON.stringify(body) });
  return {
    http,
    call,
    log: () => out,
    /** Waits until the daily jobs the first start catches up on (statistics, audits, verifications) are done. */
    async caughtUp(limitMs = 300_000) {
      for (const start = Date.now(); ; ) {
        const { jobs } = await (await call('GET', '/jobs')).json();
        if (jobs.every((j) => !j.running && (j.name.startsWith('alerts') || j.lastFinishedAt))) return;
        if (Date.now() - start > limitMs) throw new Error("the server's catch-up jobs did not finish");
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async stop() {
      process.off('exit', kill);
      if (server.exitCode !== null) return;
      const gone = new Promise((r) => server.once('exit', r));
      server.kill('SIGTERM');
      await gone;
    },
  };
}
