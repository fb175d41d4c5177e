// Runs once before the suite: the integration tests drive the built CLI and the real borg client.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestPostgres, whyNoPrivatePostgres, type TestPostgres } from './support/postgres-server.js';

export default async function setup(): Promise<() => void> {
  // Each test project (sqlite, postgres: vitest.config.ts) runs this; the first one sets up for both.
  if (process.env.BORGKEEP_TEST_SHARED) return () => undefined;
  const root = join(import.meta.dirname, '..');
  if (!existsSync(join(root, 'dist', 'cli', 'borgkeep.mjs'))) {
    throw new Error('dist/ is missing: run the suite with "npm test", which builds first');
  }
  try {
    execFileSync('borg', ['--version'], { stdio: 'pipe' });
  } catch {
    throw new Error('the borg client is not installed: apt-get install borgbackup (".ci/run" does this)');
  }
  // The run's shared folder for fixtures built once (test/helpers/shared-template.ts); the test
  // workers start after this and inherit the variable.
  const shared = mkdtempSync(join(tmpdir(), 'borgkeep-test-shared-'));
  process.env.BORGKEEP_TEST_SHARED = shared;
  // The PostgreSQL store tests' server: BORGKEEP_TEST_POSTGRES_URL when given, else a private one
  // started here as root; otherwise those tests fail saying why (test/support/temp-store.ts).
  let postgres: TestPostgres | null = null;
  if (!process.env.BORGKEEP_TEST_POSTGRES_URL) {
    const why = whyNoPrivatePostgres();
    if (why === null) {
      postgres = await startTestPostgres();
      process.env.BORGKEEP_TEST_POSTGRES_URL = postgres.url;
    } else {
      process.env.BORGKEEP_TEST_NO_POSTGRES = why;
    }
  }
  return () => {
    rmSync(shared, { recursive: true, force: true });
    postgres?.stop();
  };
}
