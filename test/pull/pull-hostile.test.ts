// A hostile client host (issue 16): its `borg` is a fake (test/pull/hostile-borg.ts, bundled here
// with esbuild, first in the PATH of the client user on the harness's port "without borg") that
// uses the job's own BORG_RSH, passphrase and URL to speak borg RPC to the job endpoint itself:
// it asks for an object of the repository, puts an object whose id does not match its content,
// or writes a manifest naming another archive. Every part else is real (borgkeep's CLI, a client
// host in a network namespace with a real sshd, the keyless proxy, a real repokey repository).
// Each attack must be refused, fail the job as hostile (a critical pull-failed alert), and leave
// the repository's committed state as it was, borg check with the real key passing.
//
// Must never pass on borgkeep's word alone: the repository is read with the real borg and key.

import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { buildSync } from 'esbuild';
import { afterAll, beforeAll, expect, test } from 'vitest';

import type { BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { createPullInstallation, stateAlerts as pullStateAlerts, type PullInstallation } from '../helpers/pull-installation.js';
import type { PullClientHost } from '../helpers/pull-client-host.js';

/** This file's client host number (runner.test.ts uses 11 and 111, pull-job.test.ts 21, pull-failures 31, pull-restart 32). */
const NET = 33;

let pull: PullInstallation;
let env: BorgkeepEnv;
let client: PullClientHost;
let keyLine: string;
let small: string;
const jobs = (host: string) => pull.jobs(host);
const borgOk = (args: readonly string[]) => pull.borgOk(args);
const archives = () => pull.archives();
const expectConsistent = (expected: readonly string[]) => pull.expectConsistent(expected);
const addHost = (name: string, paths: string, port?: number, address?: string) => pull.addHost(name, paths, port, address);

beforeAll(async () => {
  pull = await createPullInstallation('pull-hostile', NET);
  ({ env, client, keyLine } = pull);
  small = join(client.dir, 'small');
  mkdirSync(small, { mode: 0o755 });
  writeFileSync(join(small, 'a.txt'), 'a small file\n', { mode: 0o644 });
  // The hostile client: a fake borg first in the PATH of the harness's port "without borg".
  buildSync({ entryPoints: [join(import.meta.dirname, 'hostile-borg.ts')], bundle: true, platform: 'node', format: 'cjs', outfile: join(client.dir, 'hostile-borg.cjs'), logLevel: 'error' });
  chmodSync(join(client.dir, 'hostile-borg.cjs'), 0o644);
  const fake = join(client.dir, 'bin-without-borg', 'borg');
  writeFileSync(fake, `#!/bin/sh\nexec ${process.execPath} ${join(client.dir, 'hostile-borg.cjs')} "$(cat ${join(client.dir, 'hostile-mode')})" "$@"\n`, { mode: 0o755 });
}, 120_000);

afterAll(() => pull?.cleanup());

const stateAlerts = () => pullStateAlerts(env.dataDir);

/**
 * The repository's committed state: its files with their contents' hashes, but the lock, the nonce and the
 * segments after the last transaction (borg leaves an uncommitted segment of a refused session on
 * disk and drops it at the next write; it is no part of the repository).
 */
async function committedState(): Promise<string[]> {
  const root = await env.repoPath('main');
  const list = (d: string): string[] => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? list(join(d, e.name)).map((n) => `${e.name}/${n}`) : [e.name]));
  // The nonce file moves on by design: the proxy reserves AES-CTR counters of the real repository
  // before it re-encrypts anything, and a reservation is never given back (no counter reused).
  const names = list(root).filter((n) => !n.startsWith('lock') && n !== 'nonce');
  const last = Math.max(...names.filter((n) => /^index\.\d+$/.test(n)).map((n) => Number(n.slice(6))));
  return names
    .filter((n) => !/^data\//.test(n) || Number(n.split('/').pop()) <= last)
    .map((n) => `${n} ${createHash('sha256').update(readFileSync(join(root, n))).digest('hex')}`)
    .sort();
}

for (const [attack, host, refusal] of [
  ['get', 'hostile-get', /^borgkeep refused get: a pull job may read no object of the repository\.$/],
  ['forged', 'hostile-forged', /^borgkeep refused put: .*its content does not match its id/],
  ['other', 'hostile-other', /^borgkeep refused put: .*not-the-job-archive/],
] as const) {
  test(`a hostile client host whose borg speaks RPC itself (${attack}): refused, the job fails, a critical pull-failed alert opens, the repository is unchanged`, async () => {
    writeFileSync(join(client.dir, 'hostile-mode'), attack, { mode: 0o644 });
    const before = await archives();
    const files = await committedState();
    await addHost(host, small, client.portWithoutBorg);
    const run = await env.cli(['pull', 'run', host, '--wait'], { timeoutMs: 60_000 });
    expect(run.code, run.stdout).toBe(1);
    const [job] = await jobs(host);
    expect(job!.state).toBe('failed');
    expect(job!.reason).toMatch(refusal);
    const alert = (await stateAlerts()).find((a) => a.rule === 'pull-failed' && a.summary.includes(`'${host}'`));
    expect(alert, JSON.stringify(await stateAlerts())).toMatchObject({ severity: 'critical' });
    expect(await committedState()).toEqual(files);
    await expectConsistent(before);
    await env.cliOk(['host', 'remove', host]);
  }, 60_000);
}
