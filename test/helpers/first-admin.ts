// The first admin's one-time password as `borgkeep serve` hands it over when stderr is no
// terminal (every test's case): in the data directory's first-admin-password file (mode 0600).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export function firstAdminPassword(dataDir: string): string {
  return readFileSync(join(dataDir, 'first-admin-password'), 'utf8').trim();
}
