import { describe, expect, it } from 'vitest';

import { checkCompression, checkFingerprint, checkPaths, checkPullHostInput, checkSchedule, checkUser, parseAddress } from './host-input.js';

const refusal = (f: () => unknown) => {
  try {
    f();
    return 'accepted';
  } catch (e) {
    return (e as Error).message;
  }
};

describe('pull host settings', () => {
  it('reads addresses with and without a port, IPv6 in brackets', () => {
    expect(parseAddress('client.example.org')).toEqual({ address: 'client.example.org', port: 22 });
    expect(parseAddress('192.0.2.7:2222')).toEqual({ address: '192.0.2.7', port: 2222 });
    expect(parseAddress('[2001:db8::7]:22')).toEqual({ address: '2001:db8::7', port: 22 });
    expect(parseAddress('2001:db8::7')).toEqual({ address: '2001:db8::7', port: 22 });
    expect(refusal(() => parseAddress('host:0'))).toBe("the port '0' in the address 'host:0' is not a port from 1 to 65535");
    expect(refusal(() => parseAddress('host:65536'))).toBe("the port '65536' in the address 'host:65536' is not a port from 1 to 65535");
    expect(refusal(() => parseAddress('-oProxyCommand=x'))).toMatch(/^the address '-oProxyCommand=x' is not a host name or IP address; use/);
    expect(refusal(() => parseAddress(':22'))).toMatch(/^the address ':22' has no host/);
  });

  it('checks users, absolute paths, compression specs, cron schedules and fingerprints', () => {
    expect(checkUser('backup')).toBe('backup');
    expect(refusal(() => checkUser('-x'))).toMatch(/^the user '-x' is not a user name/);
    expect(checkPaths(['/etc', ' /home', '/etc'])).toEqual(['/etc', '/home']);
    expect(refusal(() => checkPaths(['/etc', 'home']))).toBe("the path 'home' is not absolute; paths on the client start with '/', e.g. /home");
    for (const ok of ['none', 'lz4', 'zstd', 'zstd,1', 'zstd,22', 'zlib,0', 'lzma,9', 'auto,zstd,10', 'obfuscate,3,lz4', 'obfuscate,110,auto,zstd,3']) expect(checkCompression(ok)).toBe(ok);
    for (const bad of ['zstd,23', 'zstd,0', 'zlib,10', 'lz4,1', 'auto', 'auto,auto,lz4', 'gzip', 'obfuscate,7,lz4', '']) {
      expect(refusal(() => checkCompression(bad))).toBe(`the compression '${bad}' is not one borg accepts; use none, lz4, zstd[,1-22], zlib[,0-9], lzma[,0-9], auto,SPEC or obfuscate,LEVEL,SPEC (as borg's --compression)`);
    }
    expect(checkSchedule('0 2 * * *')).toBe('0 2 * * *');
    expect(refusal(() => checkSchedule('every day'))).toBe("the schedule 'every day' is not a cron pattern like '0 2 * * *' (minute hour day month weekday)");
    expect(refusal(() => checkSchedule('0 0 30 2 *'))).toBe("the schedule '0 0 30 2 *' never runs");
    const fp = `SHA256:${'Ab+/'.repeat(10)}xyz`;
    expect(checkFingerprint(fp)).toBe(fp);
    expect(refusal(() => checkFingerprint('SHA256:abc'))).toMatch(/^the host key fingerprint 'SHA256:abc' is not an OpenSSH SHA-256 fingerprint/);
    expect(refusal(() => checkFingerprint(`MD5:${'a'.repeat(43)}`))).toMatch(/is not an OpenSSH SHA-256 fingerprint/);
  });

  it('fills in defaults: port 22, lz4, {host}-{now}, no schedule, 6 hours, 2 retries', () => {
    expect(checkPullHostInput({ address: 'c', user: 'u', repository: 'r', paths: ['/'] })).toEqual({
      address: 'c',
      port: 22,
      user: 'u',
      repository: 'r',
      paths: ['/'],
      excludes: [],
      schedule: null,
      compression: 'lz4',
      archiveTemplate: '{host}-{now}',
      timeoutSeconds: 21_600,
      retries: 2,
      hostKeyFingerprint: null,
    });
    expect(refusal(() => checkPullHostInput({ address: 'c', user: 'u', repository: 'r', paths: ['/'], retries: 11 }))).toBe('the retries must be a whole number from 0 to 10, not 11');
    expect(refusal(() => checkPullHostInput({ address: 'c', user: 'u', repository: 'r', paths: ['/'], timeoutSeconds: 30 }))).toBe('the time-out must be from 1 minute to 7 days, not 30 seconds');
  });
});
