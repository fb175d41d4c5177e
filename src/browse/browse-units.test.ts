// The pure parts of browsing: borg's way of showing names that are not UTF-8 and times, one HTTP
// Range, and the tar writer's headers (long names and link targets, large ids, nanosecond times,
// raw bytes), read back by GNU tar.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, test } from 'vitest';

import { parseRange } from '../api/routes/browse-routes.js';
import { modeText, normalisePath, nsToIso, shownText } from './browse.js';
import { TarWriter } from './tar-writer.js';

describe('as borg shows them', () => {
  test("bytes that are not UTF-8 are '?' each, valid UTF-8 stays", () => {
    expect(shownText(Buffer.from('bad\xffname', 'latin1'))).toBe('bad?name');
    expect(shownText(Buffer.from('ünï', 'utf8'))).toBe('ünï');
    expect(shownText(Buffer.from([0xe2, 0x82, 0x41, 0xf0, 0x9f, 0x98, 0x80]))).toBe('??A😀');
    expect(shownText(Buffer.from([0xed, 0xa0, 0x80]))).toBe('???'); // a UTF-16 surrogate in UTF-8 is invalid
  });

  test("times to the microsecond as borg shows them (Python's utcfromtimestamp(ns / 1e9): a float, rounded half to even)", () => {
    // Each value as python3 prints datetime.utcfromtimestamp(ns / 1e9).isoformat(timespec='microseconds').
    expect(nsToIso(1796587452752808577n)).toBe('2026-12-06T20:04:12.752809Z');
    expect(nsToIso(0n)).toBe('1970-01-01T00:00:00.000000Z');
    expect(nsToIso(999_999_500n)).toBe('1970-01-01T00:00:01.000000Z');
    expect(nsToIso(-1_500n)).toBe('1969-12-31T23:59:59.999998Z');
    // Where rounding the exact nanoseconds gives the other microsecond.
    expect(nsToIso(1605306284095701534n)).toBe('2020-11-13T22:24:44.095701Z');
    expect(nsToIso(1770857431975687357n)).toBe('2026-02-12T00:50:31.975688Z');
  });

  test('modes and typed paths', () => {
    expect(modeText(0o104755, 'file')).toBe('-rwsr-xr-x');
    expect(modeText(0o041777, 'directory')).toBe('drwxrwxrwt');
    expect(modeText(0o100644, 'hardlink')).toBe('hrw-r--r--');
    expect(normalisePath('//src/dir/')).toBe('src/dir');
    expect(normalisePath('/')).toBe('');
    expect(() => normalisePath('src/../etc')).toThrow(/may not hold/);
  });
});

describe('one HTTP range', () => {
  test.each([
    ['bytes=0-9', 100, [0, 9]],
    ['bytes=90-', 100, [90, 99]],
    ['bytes=-10', 100, [90, 99]],
    ['bytes=-1000', 100, [0, 99]],
    ['bytes=50-5000', 100, [50, 99]],
    ['bytes=100-', 100, null],
    ['bytes=9-0', 100, null],
    ['bytes=0-1,5-9', 100, null],
    ['items=0-1', 100, null],
    ['bytes=0-0', 0, null],
  ] as const)('%s of %i bytes', (header, size, expected) => {
    expect(parseRange(header, size)).toEqual(expected);
  });
});

describe('the tar writer', () => {
  test('GNU tar reads back long and raw names, long link targets, large ids and nanosecond times', async () => {
    const out = new PassThrough();
    const parts: Buffer[] = [];
    out.on('data', (d: Buffer) => parts.push(d));
    const tar = new TarWriter(out);
    const long = `dir/${'x'.repeat(150)}`;
    const raw = Buffer.from('dir/bad\xffname', 'latin1').toString('latin1');
    const base = { uid: 3_000_000, gid: 7, user: 'u', group: 'g', mtimeNs: 1_700_000_000_123_456_789n };
    await tar.entry({ ...base, path: 'dir', type: 'directory', mode: 0o755, size: 0 });
    async function* content(): AsyncGenerator<Buffer> {
      yield Buffer.from('hello ');
      yield Buffer.from('world\n');
    }
    await tar.entry({ ...base, path: long, type: 'file', mode: 0o640, size: 12 }, content());
    await tar.entry({ ...base, path: raw, type: 'file', mode: 0o600, size: 0 });
    await tar.entry({ ...base, path: 'dir/link', type: 'symlink', mode: 0o777, size: 0, linkTarget: long.slice(4) });
    await tar.entry({ ...base, path: 'dir/hard', type: 'hardlink', mode: 0o640, size: 0, linkTarget: long });
    await tar.entry({ ...base, user: 'ü'.repeat(20), group: 'grp', path: 'dir/owned', type: 'file', mode: 0o644, size: 0 });
    await tar.finish();
    expect(tar.bytes % 512).toBe(0);

    const dir = mkdtempSync(join(tmpdir(), 'tar-writer-'));
    try {
      writeFileSync(join(dir, 'x.tar'), Buffer.concat(parts));
      const listing = execFileSync('tar', ['--full-time', '--numeric-owner', '-tvf', join(dir, 'x.tar')], { env: { ...process.env, TZ: 'UTC', LC_ALL: 'C' } }).toString('latin1');
      expect(listing).toMatch(new RegExp(`-rw-r----- 3000000/7 +12 2023-11-14 22:13:20.123456789 ${long}\\n`));
      expect(listing).toContain(`dir/link -> ${'x'.repeat(150)}`);
      expect(listing).toContain(`dir/hard link to ${long}`);
      expect(listing).toMatch(/dir\/bad\\377name/);
      // A user name longer than the header's 31 bytes: whole from the pax header, the group field intact.
      const named = execFileSync('tar', ['-tvf', join(dir, 'x.tar')], { env: { ...process.env, LC_ALL: 'C.UTF-8' } }).toString('utf8');
      expect(named).toMatch(new RegExp(`${'ü'.repeat(20)}/grp +0 .* dir/owned`));
      execFileSync('tar', ['-xf', join(dir, 'x.tar'), '-C', dir]);
      expect(execFileSync('cat', [join(dir, long)]).toString()).toBe('hello world\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the search pattern', () => {
  test("matches like a shell: '*' within a path part, '**' across parts, '?' one character, sets; a name alone in any folder", async () => {
    const { pathMatcher } = await import('./browse.js');
    const m = (pattern: string, path: string) => pathMatcher(pattern)(path);
    expect(m('*.txt', 'src/dir/a.txt')).toBe(true);
    expect(m('*.txt', 'src/dir/a.txt.bak')).toBe(false);
    expect(m('src/*.txt', 'src/dir/a.txt')).toBe(false);
    expect(m('src/**.txt', 'src/dir/a.txt')).toBe(true);
    expect(m('/src/**/c.txt', 'src/dir/deeper/c.txt')).toBe(true);
    expect(m('src/dir/?.txt', 'src/dir/a.txt')).toBe(true);
    expect(m('src/di?/a.txt', 'src/di/.txt')).toBe(false);
    expect(m('[ab].txt', 'src/dir/b.txt')).toBe(true);
    expect(m('[!ab].txt', 'src/dir/b.txt')).toBe(false);
    expect(m('[!ab].txt', 'src/dir/c.txt')).toBe(true);
    // Regular expression characters are themselves.
    expect(m('a+b(1).txt', 'x/a+b(1).txt')).toBe(true);
    expect(m('a.txt', 'x/aXtxt')).toBe(false);
    expect(m('ünï*', 'src/ünïcödé.txt')).toBe(true);
    expect(m('home/*/', 'home/ann/')).toBe(true);
  });

  test('refuses an empty, unbalanced, too long or too wild pattern in one sentence', async () => {
    const { pathMatcher } = await import('./browse.js');
    expect(() => pathMatcher('/')).toThrow('the search pattern is empty');
    expect(() => pathMatcher('a[bc')).toThrow("the search pattern 'a[bc' has a '[' without its ']'");
    expect(() => pathMatcher('a'.repeat(1025))).toThrow('the search pattern is longer than 1024 characters');
    expect(() => pathMatcher('*a*a*a*a*a*a*a*a*a')).toThrow("the search pattern has more than 8 wildcards '*'");
    // A run of stars is one wildcard: this is three.
    expect(pathMatcher('x/**a***b*')('x/a/y/bz')).toBe(true);
  });
});
