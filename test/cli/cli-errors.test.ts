// How the CLI fails and where it looks: exit codes, one-line messages, the data directory.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { createSandbox, expectOneSentence, runBorgkeep, type CliSandbox } from './cli-harness.js';

const sandboxes: CliSandbox[] = [];
const sandbox = () => {
  const s = createSandbox();
  sandboxes.push(s);
  return s;
};
afterEach(() => sandboxes.splice(0).forEach((s) => s.cleanup()));

describe('borgkeep errors and exit codes', () => {
  it('exits 70 with one line on an unexpected error, and 1 with one line for a database it cannot open', async () => {
    const cli = sandbox();
    await cli.ok(['repo', 'create', 'photos']);
    await cli.ok(['key', 'add', 'laptop', '--file', cli.keyFile('laptop'), '--repo', 'photos', '--role', 'read']);
    // A row no borgkeep writes: reading it is a bug-class failure, not bad input.
    const raw = new BetterSqlite3(join(cli.dataDir, 'borgkeep.db'));
    raw.prepare("update grants set from_cidrs = '[not json'").run();
    raw.close();
    expectOneSentence(await cli.run(['repo', 'show', 'photos']), /^borgkeep: internal error: .*JSON/, 70);

    const broken = sandbox();
    await broken.ok(['repo', 'list']);
    writeFileSync(join(broken.dataDir, 'borgkeep.db'), 'this is not a database, just text '.repeat(200));
    rmSync(join(broken.dataDir, 'borgkeep.db-wal'), { force: true });
    rmSync(join(broken.dataDir, 'borgkeep.db-shm'), { force: true });
    expectOneSentence(
      await broken.run(['repo', 'list']),
      `cannot open the database ${join(broken.dataDir, 'borgkeep.db')}: file is not a database`,
    );
  });

  it('prints help and the version on stdout with exit 0; no command is a usage error', async () => {
    const [help, version, none] = await Promise.all([runBorgkeep(['--help']), runBorgkeep(['--version']), runBorgkeep([])]);
    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help.stdout).toMatch(/^Usage: borgkeep \[options\] \[command\]/);
    for (const command of ['repo', 'key', 'grant', 'revoke', 'ledger', 'user', 'borg-serve']) {
      expect(help.stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
    }
    expect(version).toEqual({ code: 0, stdout: '0.1.0\n', stderr: '' });
    expect(none.code).toBe(2);
    expect(none.stdout).toBe('');
  });

  it('finds the data directory from --data-dir, then BORGKEEP_DATA_DIR, then ./borgkeep-data', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'borgkeep-cwd-'));
    try {
      const fromEnv = join(cwd, 'from-env');
      await Promise.all([
        runBorgkeep(['repo', 'create', 'by-default'], { cwd }),
        runBorgkeep(['repo', 'create', 'by-env'], { cwd, env: { BORGKEEP_DATA_DIR: fromEnv } }),
        runBorgkeep(['--data-dir', 'by-flag', 'repo', 'create', 'by-flag'], { cwd, env: { BORGKEEP_DATA_DIR: fromEnv } }),
      ]);
      const names = async (dir: string) =>
        (JSON.parse((await runBorgkeep(['--data-dir', dir, 'repo', 'list', '--json'])).stdout) as { repositories: { name: string }[] })
          .repositories.map((r) => r.name);
      expect(await names(join(cwd, 'borgkeep-data'))).toEqual(['by-default']);
      expect(await names(fromEnv)).toEqual(['by-env']);
      expect(await names(join(cwd, 'by-flag'))).toEqual(['by-flag']);
      expect(existsSync(join(cwd, 'borgkeep-data', 'repos'))).toBe(true);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});
