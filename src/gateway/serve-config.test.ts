import { expect, test } from 'vitest';

import { parsePullBorgBinaries, parseServeConfig } from './serve-config.js';

test('defaults: every address on 2222, user borg', () => {
  const c = parseServeConfig({}, {});
  expect(c.sshListen).toEqual({ host: '0.0.0.0', port: 2222 });
  expect(c.sshUser).toBe('borg');
  expect(c.maxSessions).toBe(100);
  expect(c.authFailuresPerMinute).toBe(10);
});

test('flags win over the environment; IPv6 and port-only forms', () => {
  expect(parseServeConfig({ sshListen: '127.0.0.1:0' }, { BORGKEEP_SSH_LISTEN: '0.0.0.0:22' }).sshListen).toEqual({ host: '127.0.0.1', port: 0 });
  expect(parseServeConfig({}, { BORGKEEP_SSH_LISTEN: '[::1]:2200' }).sshListen).toEqual({ host: '::1', port: 2200 });
  expect(parseServeConfig({ sshListen: ':2201' }, {}).sshListen).toEqual({ host: '0.0.0.0', port: 2201 });
  expect(parseServeConfig({ maxSessions: '5' }, {}).maxSessions).toBe(5);
});

test('a bad value is one sentence naming the flag', () => {
  expect(() => parseServeConfig({ sshListen: 'localhost' }, {})).toThrow(/^--ssh-listen: 'localhost' is not HOST:PORT/);
  expect(() => parseServeConfig({ sshListen: '1.2.3.4:70000' }, {})).toThrow(/--ssh-listen/);
  expect(() => parseServeConfig({ maxSessions: '0' }, {})).toThrow(/^--max-sessions: /);
  expect(() => parseServeConfig({ maxSessionsPerKey: 'many' }, {})).toThrow(/^--max-sessions-per-key: /);
  expect(() => parseServeConfig({ sshUser: 'Root; rm' }, {})).toThrow(/^--ssh-user: is not a user name/);
});

test('the HTTP API listens on loopback port 8080 unless told otherwise; TLS needs both files', () => {
  expect(parseServeConfig({}, {}).httpListen).toEqual({ host: '127.0.0.1', port: 8080 });
  expect(parseServeConfig({}, { BORGKEEP_HTTP_LISTEN: '[::]:8443' }).httpListen).toEqual({ host: '::', port: 8443 });
  expect(parseServeConfig({ httpListen: '0.0.0.0:9000' }, { BORGKEEP_HTTP_LISTEN: '[::]:8443' }).httpListen).toEqual({ host: '0.0.0.0', port: 9000 });
  expect(() => parseServeConfig({ httpListen: 'web' }, {})).toThrow(/^--http-listen: 'web' is not HOST:PORT/);
  expect(() => parseServeConfig({ tlsCert: 'cert.pem' }, {})).toThrow(/^give --tls-cert and --tls-key together$/);
  expect(parseServeConfig({ tlsCert: 'c.pem' }, { BORGKEEP_TLS_KEY: 'k.pem' })).toMatchObject({ tlsCert: 'c.pem', tlsKey: 'k.pem' });
});

test('--public-host: HOST or HOST:PORT from the flag, the environment or the config file, refused in one sentence', () => {
  expect(parseServeConfig({}, {}).publicHost).toBeUndefined();
  expect(parseServeConfig({ publicHost: 'backup.example.com:22' }, {}).publicHost).toEqual({ host: 'backup.example.com', port: 22 });
  expect(parseServeConfig({}, { BORGKEEP_PUBLIC_HOST: 'nas.example' }).publicHost).toEqual({ host: 'nas.example', port: null });
  expect(parseServeConfig({}, {}, { publicHost: '[2001:db8::1]:2200' }).publicHost).toEqual({ host: '2001:db8::1', port: 2200 });
  expect(() => parseServeConfig({ publicHost: 'http://x' }, {})).toThrow(/^--public-host: 'http:\/\/x' is not HOST or HOST:PORT \(a DNS name or an address, e\.g\. /);
  expect(() => parseServeConfig({}, {}, { publicHost: 'x:99999' })).toThrow(/^config file, publicHost: 'x:99999' has no valid port: give 1 to 65535 after the colon$/);
});

test('pullBorgBinaries (config file only): platform names like linux-x86_64 and absolute paths, else one sentence naming the entry', () => {
  expect(parseServeConfig({}, {}).pullBorgBinaries).toEqual({});
  const binaries = { 'linux-x86_64': '/srv/borg/borg-linux64', 'freebsd-amd64': '/srv/borg/borg-freebsd64', 'linux-aarch64': '/srv/borg/borg-linux-arm64' };
  expect(parseServeConfig({}, {}, { pullBorgBinaries: binaries }).pullBorgBinaries).toEqual(binaries);
  expect(() => parseServeConfig({}, {}, { pullBorgBinaries: { 'Linux-x86_64': '/srv/borg/borg' } })).toThrow(
    /^config file, pullBorgBinaries\.Linux-x86_64: is not a platform name like linux-x86_64 \(uname -s and uname -m of the client, lowercased, joined by '-'\)$/,
  );
  for (const name of ['linux', 'linux-x86_64-extra', 'linux x86_64', '-x86_64', 'linux-']) {
    expect(() => parseServeConfig({}, {}, { pullBorgBinaries: { [name]: '/srv/borg/borg' } }), name).toThrow(/is not a platform name/);
  }
  for (const path of ['borg-linux64', './borg-linux64', '', 42]) {
    expect(() => parseServeConfig({}, {}, { pullBorgBinaries: { 'linux-x86_64': path } }), String(path)).toThrow(
      /^config file, pullBorgBinaries\.linux-x86_64: needs the absolute path of a standalone borg on this server/,
    );
  }
  expect(() => parseServeConfig({}, {}, { pullBorgBinaries: '/srv/borg/borg-linux64' })).toThrow(/^config file, pullBorgBinaries: /);
});

test("pull run's own reading of pullBorgBinaries: the same values and sentences, nothing else of the file checked", () => {
  expect(parsePullBorgBinaries({})).toEqual({});
  expect(parsePullBorgBinaries({ pullBorgBinaries: { 'linux-x86_64': '/srv/borg/borg-linux64' }, sshListen: 'not an address' })).toEqual({ 'linux-x86_64': '/srv/borg/borg-linux64' });
  expect(() => parsePullBorgBinaries({ pullBorgBinaries: { linux: '/srv/borg/borg-linux64' } })).toThrow(/^config file, pullBorgBinaries\.linux: is not a platform name like linux-x86_64/);
  expect(() => parsePullBorgBinaries({ pullBorgBinaries: ['/srv/borg/borg-linux64'] })).toThrow(/^config file, pullBorgBinaries: /);
});
