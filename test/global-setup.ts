// Runs once before the suite: the integration tests drive the built CLI and the real borg client.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
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
  return () => rmSync(shared, { recursive: true, force: true });
}
