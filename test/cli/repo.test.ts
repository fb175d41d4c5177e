// `borgkeep repo ...` end to end through the built CLI.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BORGKEEP, createSandbox, expectOneSentence, type CliSandbox } from './cli-harness.js';

// util-linux `script` gives the command a terminal, so it asks instead of refusing.
const hasScript = spawnSync('script', ['--version']).status === 0;

let cli: CliSandbox;
beforeEach(() => {
  cli = createSandbox();
});
afterEach(() => cli.cleanup());

describe('borgkeep repo', () => {
  it('creates repositories and lists them, as a table and as JSON', async () => {
    const created = await cli.ok(['repo', 'create', 'photos', '--quota', '1.5T']);
    expect(created).toMatch(/^created repository 'photos' \(quota 1\.5 TB, a backup expected every 26h\)\.\n/);
    expect(created).toContain('borg init --encryption=repokey-blake2 ssh://borg@HOST:PORT/./photos');
    await cli.ok(['repo', 'create', 'mail']);

    const { repositories } = await cli.json(['repo', 'list']);
    expect(repositories).toHaveLength(2);
    expect(repositories[0]).toEqual({
      id: 2,
      name: 'mail',
      dirName: expect.stringMatching(/^[0-9a-f]{16}$/),
      node: null, // in the data directory: on no storage node
      path: expect.stringMatching(/\/repos\/[0-9a-f]{16}$/),
      quotaBytes: null,
      expectedIntervalSeconds: 93_600,
      initialized: false,
      keyHeld: false,
      grantCount: 0,
      lastSessionAt: null,
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
    });
    expect(repositories[1]).toMatchObject({ name: 'photos', quotaBytes: 1_500_000_000_000 });
    // borg creates the directory at init, not borgkeep.
    expect(readdirSync(join(cli.dataDir, 'repos'))).toEqual([]);

    // Once borg's config file exists, the repository counts as initialized.
    const photos = repositories[1];
    mkdirSync(photos.path);
    writeFileSync(join(photos.path, 'config'), '[repository]\n');
    const table = await cli.ok(['repo', 'list']);
    expect(table.split('\n')[0]).toMatch(/^NAME\s+QUOTA\s+INITIALIZED\s+GRANTS\s+LAST SESSION$/);
    expect(table).toMatch(/^mail\s+-\s+no\s+0\s+never$/m);
    expect(table).toMatch(/^photos\s+1\.5 TB\s+yes\s+0\s+never$/m);
  });

  it('changes the quota and the expected backup interval; refuses bad values with one sentence and changes nothing', async () => {
    expect(await cli.ok(['repo', 'create', 'photos', '--interval', '7d'])).toMatch(/^created repository 'photos' \(no quota, a backup expected every 7d\)\.\n/);
    expect(await cli.ok(['repo', 'set', 'photos', '--quota', '20G', '--interval', '90m'])).toBe(
      "repository 'photos': quota 20 GB, a backup expected every 90m; sessions that start from now on use it.\n",
    );
    expect(await cli.json(['repo', 'show', 'photos'])).toMatchObject({ quotaBytes: 20_000_000_000, expectedIntervalSeconds: 5400 });
    expect(await cli.ok(['repo', 'show', 'photos'])).toMatch(/^backup expected every\s+90m$/m);
    for (const [args, message] of [
      [['--quota', '5M'], "the quota '5M' is too small; borg needs at least 10M"],
      [['--interval', 'weekly'], "the interval 'weekly' is not a duration; use minutes, hours or days, e.g. 90m, 26h or 7d"],
      [['--interval', '30s'], 'the expected backup interval must be a whole number of seconds from 60 to 31622400, not 30'],
      [[], 'say what to change: --quota SIZE (or none) and/or --interval DURATION'],
    ] as const) {
      expectOneSentence(await cli.run(['repo', 'set', 'photos', ...args]), message);
    }
    expectOneSentence(await cli.run(['repo', 'set', 'nope', '--quota', 'none']), "no repository named 'nope'");
    expect(await cli.ok(['repo', 'set', 'photos', '--quota', 'none'])).toMatch(/no quota, a backup expected every 90m/);
    expect(await cli.json(['repo', 'show', 'photos'])).toMatchObject({ quotaBytes: null, expectedIntervalSeconds: 5400 });
  });

  it('shows one repository with its grants', async () => {
    await cli.ok(['repo', 'create', 'photos']);
    await cli.ok(['key', 'add', 'laptop', '--file', cli.keyFile('laptop'), '--repo', 'photos', '--role', 'append']);
    await cli.ok(['grant', 'laptop', 'photos', '--role', 'append', '--writes-per-day', '1', '--from', '192.0.2.0/24']);

    const shown = await cli.json(['repo', 'show', 'photos']);
    expect(shown).toMatchObject({ name: 'photos', initialized: false, grantCount: 1, quotaBytes: null });
    expect(shown.path).toBe(join(cli.dataDir, 'repos', shown.dirName));
    expect(shown.grants).toEqual([
      {
        keyId: 1,
        keyName: 'laptop',
        keyFingerprint: expect.stringMatching(/^SHA256:[A-Za-z0-9+/]{43}$/),
        keyRevoked: false,
        repositoryName: 'photos',
        role: 'append',
        writesPerDay: 1,
        fromCidrs: ['192.0.2.0/24'],
        expiresAt: null,
        createdAt: expect.any(String),
        minAgeSeconds: null,
        keepLast: null,
        prefix: null,
        maxRemovalsPerDay: null,
        verifyObjects: false,
      },
    ]);

    const text = await cli.ok(['repo', 'show', 'photos']);
    expect(text).toMatch(/^repository\s+photos$/m);
    expect(text).toContain(`${shown.path} (not initialized yet)`);
    expect(text).toMatch(/^laptop\s+append\s+1\s+192\.0\.2\.0\/24\s+never\s+-$/m);
  });

  it('deletes with --yes: registration and grants go, the directory moves to the trash', async () => {
    await cli.ok(['repo', 'create', 'photos']);
    await cli.ok(['key', 'add', 'laptop', '--file', cli.keyFile('laptop'), '--repo', 'photos', '--role', 'full']);
    const { path, dirName } = await cli.json(['repo', 'show', 'photos']);
    mkdirSync(path);
    writeFileSync(join(path, 'config'), '[repository]\n');

    const out = await cli.ok(['repo', 'delete', 'photos', '--yes']);
    expect(out).toMatch(/^deleted repository 'photos' and its 1 grant\.\n/);
    const [trashed, note] = readdirSync(join(cli.dataDir, 'trash')).sort();
    expect(trashed).toMatch(new RegExp(`^${dirName}-\\d{8}T\\d{6}Z$`));
    expect(note).toBe(`${trashed}.json`);
    expect(out).toContain('To bring it back: borgkeep repo restore photos');
    expect(out).toContain(`moved to ${join(cli.dataDir, 'trash', trashed!)}`);
    expect(existsSync(join(cli.dataDir, 'trash', trashed!, 'config'))).toBe(true);
    expect(existsSync(path)).toBe(false);
    expect((await cli.json(['repo', 'list'])).repositories).toEqual([]);
    // The key is untouched; only its grant went with the repository.
    expect((await cli.json(['key', 'list'])).keys.map((k: { name: string }) => k.name)).toEqual(['laptop']);
  });

  it('restores a deleted repository from the trash with its files, quota and interval, not its grants', async () => {
    await cli.ok(['repo', 'create', 'photos', '--quota', '20G', '--interval', '7d']);
    await cli.ok(['key', 'add', 'laptop', '--file', cli.keyFile('laptop'), '--repo', 'photos', '--role', 'full']);
    const { path, dirName } = await cli.json(['repo', 'show', 'photos']);
    mkdirSync(path);
    writeFileSync(join(path, 'config'), '[repository]\n');
    await cli.ok(['repo', 'delete', 'photos', '--yes']);
    // The name is taken again meanwhile: restoring under it is refused, under another it works.
    await cli.ok(['repo', 'create', 'photos']);
    expectOneSentence(await cli.run(['repo', 'restore', 'photos']), "a repository named 'photos' already exists");
    expect(readdirSync(join(cli.dataDir, 'trash'))).toHaveLength(2); // nothing moved by the refusal
    const out = await cli.ok(['repo', 'restore', 'photos', '--as', 'photos-old']);
    expect(out).toMatch(/^restored repository 'photos-old' \(deleted \d{4}-.*\): quota 20 GB, a backup expected every 7d\.\n/);
    expect(out).toContain('Its grants were not kept: give keys access again with borgkeep grant KEY photos-old --role ROLE.');
    const shown = await cli.json(['repo', 'show', 'photos-old']);
    expect(shown).toMatchObject({ dirName, initialized: true, grantCount: 0, quotaBytes: 20_000_000_000 });
    expect(existsSync(join(shown.path, 'config'))).toBe(true);
    expect(readdirSync(join(cli.dataDir, 'trash'))).toEqual([]);
    expectOneSentence(
      await cli.run(['repo', 'restore', 'photos']),
      "the trash holds no repository that was named 'photos' (only repositories deleted with their files can come back)",
    );
  });

  it('keeps repository names unique regardless of case', async () => {
    await cli.ok(['repo', 'create', 'Photos']);
    expectOneSentence(
      await cli.run(['repo', 'create', 'photos']),
      "a repository named 'Photos' already exists; names differing only in case would be mistaken for each other",
    );
    expect((await cli.json(['repo', 'list'])).repositories.map((r: { name: string }) => r.name)).toEqual(['Photos']);
  });

  it('refuses to delete without --yes when nobody can confirm, and keeps everything', async () => {
    await cli.ok(['repo', 'create', 'photos']);
    expectOneSentence(
      await cli.run(['repo', 'delete', 'photos']),
      "refusing to delete repository 'photos' without confirmation; pass --yes",
    );
    expectOneSentence(await cli.run(['repo', 'delete', 'nope', '--yes']), "no repository named 'nope'");
    expect((await cli.json(['repo', 'list'])).repositories.map((r: { name: string }) => r.name)).toEqual(['photos']);
  });

  it.skipIf(!hasScript)('on a terminal, asks for the name and deletes only when it is typed', async () => {
    await cli.ok(['repo', 'create', 'photos']);
    const ask = (answer: string) =>
      spawnSync('script', ['-qec', `'${process.execPath}' '${BORGKEEP}' --data-dir '${cli.dataDir}' repo delete photos`, '/dev/null'], {
        input: `${answer}\n`,
        encoding: 'utf8',
      });
    const wrong = ask('photo');
    expect(wrong.stdout).toContain("Type its name to confirm:");
    expect(wrong.stdout).toContain("borgkeep: repository 'photos' was not deleted: the name typed did not match");
    expect((await cli.json(['repo', 'list'])).repositories).toHaveLength(1);
    const right = ask('photos');
    expect(right.stdout).toContain("deleted repository 'photos' and its 0 grants.");
    expect((await cli.json(['repo', 'list'])).repositories).toEqual([]);
  });
});
