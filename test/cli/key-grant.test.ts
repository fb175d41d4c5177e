// `borgkeep key ...`, `grant` and `revoke` end to end through the built CLI, with real
// ssh-keygen keys.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSandbox, expectOneSentence, type CliSandbox } from './cli-harness.js';

let cli: CliSandbox;
beforeEach(() => {
  cli = createSandbox();
});
afterEach(() => cli.cleanup());

function sshKeygen(name: string, args: string[]): { pub: string; fingerprint: string } {
  const file = join(cli.root, name);
  execFileSync('ssh-keygen', ['-q', ...args, '-N', '', '-C', `${name} comment`, '-f', file], { stdio: 'pipe' });
  const fingerprint = execFileSync('ssh-keygen', ['-l', '-f', `${file}.pub`], { encoding: 'utf8' }).split(' ')[1]!;
  return { pub: `${file}.pub`, fingerprint };
}

describe('borgkeep key', () => {
  it('adds keys from a file and from stdin, lists them and revokes one', async () => {
    const ed = sshKeygen('laptop', ['-t', 'ed25519']);
    const ec = sshKeygen('server', ['-t', 'ecdsa', '-b', '384']);
    await cli.ok(['repo', 'create', 'photos']);

    const added = await cli.ok(['key', 'add', 'laptop', '--file', ed.pub, '--repo', 'photos', '--role', 'append']);
    expect(added).toBe(
      `added key 'laptop' (id 1, ssh-ed25519 256 bits, ${ed.fingerprint}).\ngranted append on repository 'photos'.\n`,
    );
    const fromStdin = await cli.ok(['key', 'add', 'server', '-'], { input: readFileSync(ec.pub, 'utf8') });
    expect(fromStdin).toContain(`added key 'server' (id 2, ecdsa-sha2-nistp384 384 bits, ${ec.fingerprint}).`);
    expect(fromStdin).toContain('borgkeep grant server REPO --role');

    const { keys } = await cli.json(['key', 'list']);
    expect(keys).toEqual([
      {
        id: 1,
        name: 'laptop',
        type: 'ssh-ed25519',
        bits: 256,
        fingerprint: ed.fingerprint,
        comment: 'laptop comment',
        revoked: false,
        revokedAt: null,
        createdAt: expect.any(String),
      },
      expect.objectContaining({ id: 2, name: 'server', type: 'ecdsa-sha2-nistp384', bits: 384, fingerprint: ec.fingerprint }),
    ]);
    expect((await cli.json(['repo', 'show', 'photos'])).grants.map((g: { keyName: string; role: string }) => [g.keyName, g.role])).toEqual([
      ['laptop', 'append'],
    ]);

    // By id; the grant goes with the key.
    expect(await cli.ok(['key', 'revoke', '1'])).toBe(
      "revoked key 'laptop' (id 1) and removed its 1 grant; sessions with it are refused from now on.\n",
    );
    expect(await cli.ok(['key', 'revoke', 'laptop'])).toMatch(/^key 'laptop' \(id 1\) was already revoked at \S+Z\.\n$/);
    const after = await cli.json(['key', 'list']);
    expect(after.keys[0]).toMatchObject({ name: 'laptop', revoked: true, revokedAt: expect.any(String) });
    expect((await cli.json(['repo', 'show', 'photos'])).grants).toEqual([]);
    const table = await cli.ok(['key', 'list']);
    expect(table).toMatch(/^1\s+laptop\s+ssh-ed25519\s+256\s+SHA256:\S+\s+revoked \S+Z\s+laptop comment$/m);
    expect(table).toMatch(/^2\s+server\s+ecdsa-sha2-nistp384\s+384\s+SHA256:\S+\s+active\s+server comment$/m);
  });
});

describe('borgkeep grant and revoke', () => {
  it('creates a grant with every limit, replaces it, and removes it', async () => {
    await cli.ok(['repo', 'create', 'photos']);
    await cli.ok(['key', 'add', 'laptop', '--file', cli.keyFile('laptop')]);

    const granted = await cli.ok([
      'grant', 'laptop', 'photos', '--role', 'prune', '--writes-per-day', '2',
      '--from', '192.0.2.7, 2001:DB8::/32', '--expires', '2999-12-31T18:30+02:00',
    ]);
    expect(granted).toBe(
      "granted prune on repository 'photos' to key 'laptop' (2 backups per day; from 192.0.2.7/32, 2001:db8::/32; until 2999-12-31T16:30:00Z).\n",
    );
    let [grant] = (await cli.json(['repo', 'show', 'photos'])).grants;
    expect(grant).toMatchObject({
      role: 'prune',
      writesPerDay: 2,
      fromCidrs: ['192.0.2.7/32', '2001:db8::/32'],
      expiresAt: '2999-12-31T16:30:00.000Z',
    });

    const before = Date.now();
    expect(await cli.ok(['grant', '1', 'photos', '--role', 'read', '--expires', '30d'])).toMatch(
      /^replaced the grant of key 'laptop' on repository 'photos': now read \(until \S+Z\)\.\n$/,
    );
    [grant] = (await cli.json(['repo', 'show', 'photos'])).grants;
    expect(grant).toMatchObject({ role: 'read', writesPerDay: null, fromCidrs: null });
    const expires = Date.parse(grant.expiresAt) - before;
    expect(expires).toBeGreaterThanOrEqual(30 * 86_400_000);
    expect(expires).toBeLessThan(30 * 86_400_000 + 60_000);

    expect(await cli.ok(['revoke', '1', 'photos'])).toBe("removed the read grant of key 'laptop' on repository 'photos'.\n");
    expectOneSentence(await cli.run(['revoke', 'laptop', 'photos']), "key 'laptop' has no grant on repository 'photos'");
    expect((await cli.json(['repo', 'show', 'photos'])).grants).toEqual([]);
  });
});

describe('borgkeep user', () => {
  it('adds users with a generated password printed once, or one from a file, lists them, sets passwords', async () => {
    const added = await cli.ok(['user', 'add', 'alice', '--role', 'admin']);
    const password = /^added user 'alice' \(id 1\) as admin\.\nIts password, shown only now: ([A-Za-z0-9_-]{20})\n$/.exec(added)?.[1];
    expect(password).toBeDefined();
    expect((await cli.json(['user', 'list'])).users).toEqual([
      { id: 1, name: 'alice', role: 'admin', hasPassword: true, totpEnabled: false, mustChangePassword: false, createdAt: expect.any(String), source: 'local' },
    ]);
    const file = join(cli.root, 'pw.txt');
    writeFileSync(file, 'bobs long password\nignored second line\n');
    expect(await cli.ok(['user', 'add', 'bob', '--role', 'viewer', '--password-file', file])).toBe("added user 'bob' (id 2) as viewer.\n");
    expect(await cli.ok(['user', 'passwd', 'bob', '--password-file', file])).toBe("set the password of 'bob'; their console sessions have ended.\n");
    expect(await cli.ok(['user', 'passwd', 'alice'])).toMatch(/^set the password of 'alice'; their console sessions have ended\.\nThe new password, shown only now: [A-Za-z0-9_-]{20}\n$/);

    // The stored hash is argon2id and verifies the file's password.
    const { openStore } = await import('../../src/store/database.js');
    const { createPasswordHasher } = await import('../../src/api/auth/passwords.js');
    const store = await openStore({ dataDir: cli.dataDir });
    try {
      const bob = await store.findUserCredentials('bob');
      expect(bob?.passwordHash).toMatch(/^\$argon2id\$/);
      expect(await (await createPasswordHasher()).verify(bob!.passwordHash!, 'bobs long password')).toBe(true);
    } finally {
      await store.close();
    }
    writeFileSync(file, 'short\n');
    expectOneSentence(await cli.run(['user', 'add', 'carol', '--role', 'viewer', '--password-file', file]), 'a password needs at least 10 characters');
    expectOneSentence(await cli.run(['user', 'add', 'carol', '--role', 'viewer', '--password-file', join(cli.root, 'none')]), `cannot read the password file ${join(cli.root, 'none')}: there is no such file`);
    expectOneSentence(await cli.run(['user', 'passwd', 'nobody']), "no user named 'nobody'");
  });
});
