import { describe, expect, test } from 'vitest';

import { borgServeArgv } from '../guard/borg-child.js';
import { clientAddressFromEnv, parseOriginalCommand } from './original-command.js';

describe('SSH_ORIGINAL_COMMAND', () => {
  test('only the log level is taken from a borg serve command line', () => {
    expect(parseOriginalCommand('borg serve --info')).toEqual({ isBorgServe: true, logLevel: 'info' });
    expect(parseOriginalCommand('/usr/bin/borg serve --debug --debug-topic=repository')).toEqual({ isBorgServe: true, logLevel: 'debug' });
    expect(parseOriginalCommand('BORG_X=1 borg1 serve -v --umask=077')).toEqual({ isBorgServe: true, logLevel: 'info' });
    const hostile = parseOriginalCommand('borg serve --storage-quota=1T --restrict-to-path / --append-only=0 --error');
    expect(hostile).toEqual({ isBorgServe: true, logLevel: 'error' });
    // The child's argv comes from the server's facts alone.
    const argv = borgServeArgv({ repositoryPath: '/srv/r/abc', appendOnly: true, storageQuota: 10_000_000, logLevel: hostile.logLevel });
    expect(argv).toEqual(['serve', '--restrict-to-repository', '/srv/r/abc', '--append-only', '--storage-quota=10000000', '--error']);
  });

  test('anything but borg serve is refused', () => {
    for (const cmd of ['sh', 'cat /etc/passwd', 'borg', 'borg list', 'borg --storage-quota=1T serve', 'rsync --server', 'scp -t /', 'bash -c "borg serve"']) {
      expect(parseOriginalCommand(cmd).isBorgServe, cmd).toBe(false);
    }
  });

  test('no command (sshd without a forced original command) means plain borg serve', () => {
    expect(parseOriginalCommand(undefined)).toEqual({ isBorgServe: true, logLevel: null });
  });
});

test('the client address comes from SSH_CONNECTION, else SSH_CLIENT', () => {
  expect(clientAddressFromEnv({ SSH_CONNECTION: '192.0.2.7 51000 192.0.2.1 22', SSH_CLIENT: '10.0.0.1 1 22' })).toBe('192.0.2.7');
  expect(clientAddressFromEnv({ SSH_CLIENT: '2001:db8::5 51000 22' })).toBe('2001:db8::5');
  expect(clientAddressFromEnv({})).toBeNull();
});
