import { describe, expect, it } from 'vitest';

import { clientPathProblem, clientSetup, hostOfHostHeader, knownHostsLines, parsePublicHost, RECOMMENDED_ENCRYPTION, type SetupInput } from './client-setup.js';

const hostKeys = [
  { type: 'ssh-ed25519', publicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA', fingerprint: 'SHA256:ed' },
  { type: 'ssh-rsa', publicKey: 'ssh-rsa AAAAB3NzaC1yc2E', fingerprint: 'SHA256:rsa' },
];
const input = (over: Partial<SetupInput> = {}, role: SetupInput['key']['role'] = 'append', initialized = true): SetupInput => ({
  target: { user: 'borg', host: 'backup.example.com', port: 2222 },
  hostKeys,
  repository: { name: 'web', initialized },
  key: { name: 'laptop', fingerprint: 'SHA256:key', role },
  identityFile: null,
  configDir: '/etc/borgmatic',
  ...over,
});

describe('parsePublicHost', () => {
  it.each([
    ['backup.example.com', 'backup.example.com', null],
    ['Backup.Example.com:2222', 'backup.example.com', 2222],
    ['192.0.2.7:22', '192.0.2.7', 22],
    ['[2001:db8::1]:2200', '2001:db8::1', 2200],
    ['2001:db8::1', '2001:db8::1', null],
  ])('%s', (text, host, port) => expect(parsePublicHost(text)).toEqual({ host, port }));

  it.each(['', 'a b', 'host:', 'http://host', 'host:0', 'host:70000', '[nothex]:22', '-bad-.example'])('refuses %j in one sentence', (text) => {
    const r = parsePublicHost(text);
    expect(r).toHaveProperty('error');
    expect((r as { error: string }).error).toMatch(/^'.*' (is not HOST or HOST:PORT|has no valid port)/);
  });

  it('takes the host of a Host header', () => {
    expect(hostOfHostHeader('console.example.com:8443')).toBe('console.example.com');
    expect(hostOfHostHeader('[::1]:8080')).toBe('::1');
    expect(hostOfHostHeader(undefined)).toBeNull();
  });
});

describe('client paths', () => {
  it('accepts absolute plain paths and refuses what would need quoting', () => {
    expect(clientPathProblem('/root/.ssh/id_ed25519_backup', 'the key file')).toBeNull();
    for (const p of ['relative/key', '/a b', "/a'b", '/x/../etc/shadow', '~/.ssh/id']) {
      expect(clientPathProblem(p, 'the key file')).toMatch(/^the key file must be an absolute path/);
    }
  });
});

describe('clientSetup', () => {
  it('uses the advertised host and port in the URL and the known_hosts lines', () => {
    const s = clientSetup(input());
    expect(s.url).toBe('ssh://borg@backup.example.com:2222/./web');
    expect(s.knownHosts).toBe('[backup.example.com]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA\n[backup.example.com]:2222 ssh-rsa AAAAB3NzaC1yc2E');
    expect(knownHostsLines({ user: 'borg', host: 'h.example', port: 22 }, hostKeys.slice(0, 1))).toBe('h.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA');
    expect(clientSetup(input({ target: { user: 'borg', host: '2001:db8::1', port: 2222 } })).url).toBe('ssh://borg@[2001:db8::1]:2222/./web');
  });

  it('names the identity file only for a key that is not the default, and always checks the host key strictly', () => {
    expect(clientSetup(input()).sshCommand).toBe('ssh -o UserKnownHostsFile=/etc/borgmatic/known_hosts -o StrictHostKeyChecking=yes');
    const s = clientSetup(input({ identityFile: '/root/.ssh/id_backup' }));
    expect(s.sshCommand).toBe('ssh -o UserKnownHostsFile=/etc/borgmatic/known_hosts -o StrictHostKeyChecking=yes -i /root/.ssh/id_backup -o IdentitiesOnly=yes');
    expect(s.borgmatic['1.7']).toContain(`    ssh_command: ${s.sshCommand}\n`);
    expect(s.borgmatic['1.8']).toContain(`\nssh_command: ${s.sshCommand}\n`);
    expect(s.shell).toContain(`export BORG_RSH='${s.sshCommand}'`);
  });

  it('shows borg init, with the recommended encryption, only for a full key while the repository is not initialised', () => {
    expect(RECOMMENDED_ENCRYPTION).toBe('repokey-blake2');
    const fresh = clientSetup(input({}, 'full', false));
    expect(fresh.shell).toContain('borg init --encryption=repokey-blake2 ssh://borg@backup.example.com:2222/./web');
    expect(fresh.borgmatic['1.7']).toContain('# once, to create the repository: borgmatic init --encryption repokey-blake2');
    expect(fresh.borgmatic['1.8']).toContain('# once, to create the repository: borgmatic repo-create --encryption repokey-blake2');
    const done = clientSetup(input({}, 'full', true));
    for (const text of [done.shell, done.borgmatic['1.7'], done.borgmatic['1.8'], done.vorta]) expect(text).not.toMatch(/init|repo-create|Initialize/);
    const appendFresh = clientSetup(input({}, 'append', false));
    expect(appendFresh.shell).not.toMatch(/^borg init/m);
    expect(appendFresh.shell).toContain('waits for its first borg init, by a key with the full role');
  });

  it('1.7 for an append key: the sections Debian 12 reads, no retention, runs create and check only', () => {
    const s = clientSetup(input());
    const text = s.borgmatic['1.7'];
    expect(text).toMatch(/^location:\n    source_directories:\n/m);
    expect(text).toContain('    repositories:\n        - ssh://borg@backup.example.com:2222/./web\n');
    expect(text).toMatch(/^storage:\n    encryption_passcommand: cat \/etc\/borgmatic\/passphrase\n/m);
    expect(text).not.toMatch(/retention:|keep_|skip_actions|label:/);
    expect(s.run['1.7']).toBe('borgmatic create check --verbosity 1');
    expect(text).toContain('# Run: borgmatic create check --verbosity 1');
    expect(text).toContain('#   ExecStart=/usr/bin/borgmatic --verbosity -1 --syslog-verbosity 1 create check');
  });

  it('1.8 for an append key: the flat format with skip_actions', () => {
    const s = clientSetup(input());
    const text = s.borgmatic['1.8'];
    expect(text).not.toMatch(/^(location|storage|retention|consistency):/m);
    expect(text).toContain('repositories:\n    - path: ssh://borg@backup.example.com:2222/./web\n      label: web\n');
    expect(text).toContain('skip_actions:\n    - prune\n    - compact');
    expect(s.run['1.8']).toBe('borgmatic --verbosity 1');
  });

  it('a full key gets retention and a note on how compaction is decided', () => {
    const s = clientSetup(input({}, 'full'));
    expect(s.borgmatic['1.7']).toContain('retention:\n    keep_daily: 7');
    expect(s.borgmatic['1.8']).toContain('\nkeep_daily: 7');
    for (const text of [s.borgmatic['1.7'], s.borgmatic['1.8']]) {
      expect(text).toContain("borgkeep's compaction gate");
      expect(text).toContain('borgkeep approve web');
      expect(text).not.toContain('skip_actions');
    }
    expect(s.run['1.7']).toBe('borgmatic --verbosity 1');
  });

  it('prune and read keys run only what they may', () => {
    const prune = clientSetup(input({}, 'prune'));
    expect(prune.run['1.7']).toBe('borgmatic prune --verbosity 1');
    expect(prune.borgmatic['1.8']).toContain('skip_actions:\n    - create\n    - compact\n    - check');
    expect(prune.shell).toContain('borg prune --list --keep-daily 7 --keep-weekly 4 --keep-monthly 6 ssh://');
    const read = clientSetup(input({}, 'read'));
    expect(read.run['1.7']).toBe('borgmatic list --verbosity 1');
    expect(read.borgmatic['1.7']).not.toContain('consistency:');
    expect(read.shell).toContain('borg list ssh://');
  });

  it('the Vorta hint names the URL, the host key fingerprint and, for an append key, the schedule', () => {
    const s = clientSetup(input());
    expect(s.vorta).toContain('URL ssh://borg@backup.example.com:2222/./web');
    expect(s.vorta).toContain('SHA256:ed (ssh-ed25519)');
    expect(s.vorta).toContain('leave pruning and compaction off');
  });

  it('never writes a passphrase into a snippet, only the file that holds it', () => {
    const s = clientSetup(input({}, 'full', false));
    expect(JSON.stringify(s)).not.toMatch(/encryption_passphrase|BORG_PASSPHRASE=/);
  });
});
