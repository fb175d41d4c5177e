// One installation for pull tests: a borgkeep data directory (embedded transport) with a repokey
// repository 'main' whose key the vault holds, a client host (a network namespace with a real
// sshd and borg) whose authorized_keys holds the line `borgkeep pull-key` prints, and the checks
// the failure tests share (the repository consistent, no job directory left on the client).

import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect } from 'vitest';

import { createAlertEngine } from '../../src/alerts/alert-engine.js';
import { createMonitor } from '../../src/alerts/monitor.js';
import { openStore } from '../../src/store/database.js';

import { createBorgkeepEnv, PASSPHRASE, type BorgkeepEnv } from './borgkeep-env.js';
import { startPullClientHost, type PullClientHost } from './pull-client-host.js';

export interface JobRow {
  id: number;
  host: string;
  trigger: string;
  state: string;
  archive: string | null;
  reason: string | null;
  bytes: number;
  files: number;
}

export interface PullInstallation {
  readonly env: BorgkeepEnv;
  readonly client: PullClientHost;
  /** A private directory of the test (the passphrase file is in it). */
  readonly work: string;
  /** What `borgkeep pull-key` printed for authorized_keys. */
  readonly keyLine: string;
  /** `pull list --host HOST --json`, newest first. */
  jobs(host: string): Promise<JobRow[]>;
  /** A borg command with the repository's full key; fails the test unless it exits 0. */
  borgOk(args: readonly string[]): Promise<string>;
  archives(): Promise<string[]>;
  /** `borg check` passes, the archives are exactly `expected` (no partial one, no checkpoint), no job directory is left on the client. */
  expectConsistent(expected: readonly string[]): Promise<void>;
  /** `host add NAME` for this client with its pinned host key, backing up `paths`. */
  addHost(name: string, paths: string, port?: number, address?: string): Promise<void>;
  cleanup(): Promise<void>;
}

/** `prepare` runs on the fresh data directory before the repository is made (e.g. a tmpfs for repos/). */
export async function createPullInstallation(label: string, net: number, prepare?: (env: BorgkeepEnv) => void): Promise<PullInstallation> {
  const env = createBorgkeepEnv(label, 'embedded');
  const work = mkdtempSync(join(tmpdir(), `bk-${label}-`));
  prepare?.(env);
  const borgOk = async (args: readonly string[]): Promise<string> => {
    const r = await env.borg('admin', args);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout;
  };
  await env.repoWithKeys('main', { admin: 'full' });
  await borgOk(['init', '-e', 'repokey', env.url('main')]);
  const pass = join(work, 'passphrase');
  writeFileSync(pass, `${PASSPHRASE}\n`, { mode: 0o600 });
  await env.cliOk(['repo', 'key', 'main', '--passphrase-file', pass]);
  const keyLine = (await env.cliOk(['pull-key'])).split('\n').find((l) => l.includes('ssh-ed25519'))!.trim();
  const client = await startPullClientHost(net, [keyLine]);
  const archives = async (): Promise<string[]> => (await borgOk(['list', '--short', env.url('main')])).split('\n').filter(Boolean);
  return {
    env,
    client,
    work,
    keyLine,
    borgOk,
    archives,
    jobs: async (host) => (JSON.parse(await env.cliOk(['pull', 'list', '--host', host, '--json'])) as { jobs: JobRow[] }).jobs,
    async expectConsistent(expected) {
      await borgOk(['check', env.url('main')]);
      const names = await archives();
      expect(names).toEqual(expected);
      expect(names.filter((n) => n.includes('.checkpoint'))).toEqual([]);
      expect(readdirSync(client.tmpDir)).toEqual([]);
    },
    async addHost(name, paths, port = client.port, address = client.address) {
      await env.cliOk([
        'host', 'add', name, '--address', `${address}:${port}`, '--user', client.user, '--repo', 'main',
        '--paths', paths, '--archive', '{host}-{now}', '--accept-host-key', client.hostKeyFingerprint,
      ]);
    },
    async cleanup() {
      await client.close();
      await env.cleanup();
      rmSync(work, { recursive: true, force: true });
    },
  };
}

/** The state alerts a running server would raise now for this data directory (alert-rules.ts through the monitor). */
export async function stateAlerts(dataDir: string): Promise<Array<{ rule: string; severity: string; summary: string }>> {
  const store = await openStore({ dataDir });
  try {
    const engine = createAlertEngine({ store, notifier: { notify: async () => undefined }, now: () => new Date(), repositoryName: async () => null });
    await createMonitor({ store, engine, now: () => new Date(), sizeOf: async () => null, disk: async () => null }).evaluate('state');
    return (await store.openAlerts()).map((a) => ({ rule: a.rule, severity: a.severity, summary: a.summary }));
  } finally {
    await store.close();
  }
}
