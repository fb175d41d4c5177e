// Runs the built `bin/borgkeep` as a subprocess against a fresh temporary data directory, the way
// an admin would. Build first: `npx tsc -p tsconfig.build.json` (npm test does).

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { ed25519Line } from '../support/temp-store.js';

export const BORGKEEP = join(import.meta.dirname, '..', '..', 'bin', 'borgkeep');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliSandbox {
  root: string;
  dataDir: string;
  run(args: readonly string[], opts?: { input?: string; env?: NodeJS.ProcessEnv }): Promise<CliResult>;
  /** Runs and fails the test unless the exit code is 0; returns stdout. */
  ok(args: readonly string[], opts?: { input?: string }): Promise<string>;
  /** Runs with --json and parses stdout. */
  json<T = any>(args: readonly string[]): Promise<T>;
  /** Writes a fresh ed25519 public key file and returns its path. */
  keyFile(name: string, content?: string): string;
  cleanup(): void;
}

export function runBorgkeep(
  args: readonly string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, BORGKEEP_DATA_DIR: undefined, BORGKEEP_DEBUG: undefined, ...opts.env };
    const child = spawn(process.execPath, [BORGKEEP, ...args], { env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({ code: code ?? (signal ? 128 : -1), stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }),
    );
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

export function createSandbox(): CliSandbox {
  const root = mkdtempSync(join(tmpdir(), 'borgkeep-cli-'));
  const dataDir = join(root, 'data');
  const sandbox: CliSandbox = {
    root,
    dataDir,
    run: (args, opts) => runBorgkeep(['--data-dir', dataDir, ...args], opts),
    async ok(args, opts) {
      const result = await sandbox.run(args, opts);
      expect(result.stderr, `borgkeep ${args.join(' ')}`).toBe('');
      expect(result.code, `borgkeep ${args.join(' ')}`).toBe(0);
      return result.stdout;
    },
    async json(args) {
      return JSON.parse(await sandbox.ok([...args, '--json']));
    },
    keyFile(name, content = `${ed25519Line(`${name}@test`)}\n`) {
      const file = join(root, `${name}.pub`);
      writeFileSync(file, content);
      return file;
    },
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
  return sandbox;
}

/** A refusal as the CLI must print it: non-zero exit, one line on stderr, no stack trace, nothing on stdout. */
export function expectOneSentence(result: CliResult, message: string | RegExp, code = 1): void {
  expect(result.code).toBe(code);
  expect(result.stdout).toBe('');
  expect(result.stderr.endsWith('\n')).toBe(true);
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(result.stderr).not.toMatch(/^\s+at /m);
  if (typeof message === 'string') expect(lines[0]).toBe(`borgkeep: ${message}`);
  else expect(lines[0]).toMatch(message);
}
