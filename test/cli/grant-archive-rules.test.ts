// `borgkeep grant ... --role prune --min-age/--keep-last/--prefix/--max-removals-per-day` and
// `--verify-objects` (issue 14) through the built CLI: the rule is stored, shown by `repo show`
// (table and JSON), replaced with the grant; bad values and rules on the wrong role are one
// sentence with nothing stored.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { createSandbox, expectOneSentence, type CliSandbox } from './cli-harness.js';

let cli: CliSandbox;
beforeEach(async () => {
  cli = createSandbox();
  const file = join(cli.root, 'k');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'k', '-f', file], { stdio: 'pipe' });
  await cli.ok(['repo', 'create', 'photos']);
  await cli.ok(['key', 'add', 'laptop', '--file', `${file}.pub`]);
});
afterEach(() => cli.cleanup());

interface ShownGrant {
  role: string;
  minAgeSeconds: number | null;
  keepLast: number | null;
  prefix: string | null;
  maxRemovalsPerDay: number | null;
  verifyObjects: boolean;
}
const shown = async () => ((await cli.json(['repo', 'show', 'photos'])) as { grants: ShownGrant[] }).grants;

it('stores a prune grant\'s retention rule and shows it', async () => {
  const out = await cli.ok(['grant', 'laptop', 'photos', '--role', 'prune', '--min-age', '30d', '--keep-last', '7', '--prefix', 'host1-', '--max-removals-per-day', '3', '--verify-objects']);
  expect(out).toBe("granted prune on repository 'photos' to key 'laptop' (--min-age 30d, --keep-last 7, --prefix host1-, --max-removals-per-day 3, --verify-objects).\n");
  expect(await shown()).toEqual([expect.objectContaining({ role: 'prune', minAgeSeconds: 30 * 86_400, keepLast: 7, prefix: 'host1-', maxRemovalsPerDay: 3, verifyObjects: true })]);
  expect(await cli.ok(['repo', 'show', 'photos'])).toMatch(/ARCHIVE RULES[\s\S]*--min-age 30d --keep-last 7 --prefix host1- --max-removals-per-day 3 --verify-objects/);
  await cli.ok(['grant', 'laptop', 'photos', '--role', 'append', '--verify-objects']);
  expect(await shown()).toEqual([expect.objectContaining({ role: 'append', minAgeSeconds: null, keepLast: null, prefix: null, maxRemovalsPerDay: null, verifyObjects: true })]);
  await cli.ok(['grant', 'laptop', 'photos', '--role', 'prune', '--min-age', '90m']);
  expect(await shown()).toEqual([expect.objectContaining({ minAgeSeconds: 5400, verifyObjects: false })]);
});

it('refuses bad values and rules on the wrong role in one sentence, storing nothing', async () => {
  const bad: Array<[string[], string]> = [
    [['--role', 'prune', '--min-age', '30x'], "--min-age '30x' is not a duration; use a whole number of days, hours, minutes or seconds, e.g. 30d, 12h or 90m"],
    [['--role', 'prune', '--min-age', '30'], "--min-age '30' is not a duration; use a whole number of days, hours, minutes or seconds, e.g. 30d, 12h or 90m"],
    [['--role', 'prune', '--keep-last', '0'], "--keep-last must be a whole number from 1 to 1000000, not '0'"],
    [['--role', 'prune', '--max-removals-per-day', 'many'], "--max-removals-per-day must be a whole number from 1 to 1000000, not 'many'"],
    [['--role', 'append', '--keep-last', '7'], 'a keep-last count (--keep-last) is a retention rule of the prune role, not of append'],
    [['--role', 'full', '--min-age', '1d'], 'a minimum age (--min-age) is a retention rule of the prune role, not of full'],
    [['--role', 'read', '--verify-objects'], '--verify-objects checks what a key writes; the read role writes nothing'],
    [['--role', 'prune', '--prefix', 'a/b'], 'the prefix has a control character or a slash, which no borg archive name has'],
  ];
  for (const [args, message] of bad) expectOneSentence(await cli.run(['grant', 'laptop', 'photos', ...args]), message);
  expect(await shown()).toEqual([]);
});
