// The scrubbers with what borg 1.2.4's `borg serve` really wrote (recorded with the stock client
// and a 1.0-style tuple client against borgkeep; paths as they were on the test machine).

import { describe, expect, it } from 'vitest';

import { createStderrScrubber, createTextScrubber, createTracebackFilter } from './stderr-scrubber.js';

const REPOS = '/srv/borgkeep/repos';
const REPO = `${REPOS}/c0ffee`;
const scrubText = createTextScrubber([
  [REPO, '/./main'],
  [REPOS, '(server)'],
  ['/srv/borgkeep', '(server)'],
]);

/** A frame block of borg 1.2.4 under Python 3.11, as format_exc() writes it. */
const FRAMES = [
  '  File "/usr/lib/python3/dist-packages/borg/remote.py", line 240, in serve',
  '    res = f(**args)',
  '          ^^^^^^^^^',
  '  File "/usr/lib/python3/dist-packages/borg/repository.py", line 1206, in get',
  '    raise self.ObjectNotFound(id, self.path) from None',
];
const NOT_FOUND = `borg.repository.Repository.ObjectNotFound: Object with key ${'ff'.repeat(32)} not found in repository ${REPO}.`;
const SYSINFO = [
  '',
  'Platform: Linux vm 6.18.44 #1 SMP PREEMPT_DYNAMIC x86_64',
  'Linux: Unknown Linux  ',
  'Borg: 1.2.4  Python: CPython 3.11.2 msgpack: 1.0.3 fuse: None [pyfuse3,llfuse]',
  'PID: 4242  CWD: /srv/borgkeep/serve-home',
  `sys.argv: ['/usr/bin/borg', 'serve', '--restrict-to-repository', '${REPO}', '--append-only']`,
  'SSH_ORIGINAL_COMMAND: None',
];

function expectClean(text: string): void {
  for (const leak of ['Traceback', 'File "', 'line 240', 'line 1206', 'dist-packages', 'res = f(', '^^^', 'raise self', '4242', 'sys.argv', '/srv/borgkeep']) {
    expect(text.includes(leak), `${leak} in:\n${text}`).toBe(false);
  }
}

describe('the stderr of a tuple-format session (text log lines)', () => {
  const stderr = [
    `$LOG ERROR root Remote: Object with key ${'ff'.repeat(32)} not found in repository ${REPO}.`,
    '$LOG ERROR root Remote: Traceback (most recent call last):',
    ...FRAMES,
    NOT_FOUND,
    ...SYSINFO,
    '$LOG DEBUG root Remote: next line',
    '',
  ].join('\n');

  it('keeps the message and the exception line, drops the traceback and the sysinfo block', () => {
    const s = createStderrScrubber(scrubText);
    const out = s.push(Buffer.from(stderr)) + s.end();
    expectClean(out);
    expect(out).toBe(
      [
        `$LOG ERROR root Remote: Object with key ${'ff'.repeat(32)} not found in repository /./main.`,
        `borg.repository.Repository.ObjectNotFound: Object with key ${'ff'.repeat(32)} not found in repository /./main.`,
        '',
        '$LOG DEBUG root Remote: next line',
        '',
      ].join('\n'),
    );
  });

  it('does the same when the lines arrive a few bytes at a time', () => {
    const s = createStderrScrubber(scrubText);
    const bytes = Buffer.from(stderr);
    let out = '';
    for (let i = 0; i < bytes.length; i += 7) out += s.push(bytes.subarray(i, i + 7));
    out += s.end();
    expectClean(out);
    expect(out).toContain('ObjectNotFound: Object with key');
  });

  it('drops a chained traceback entirely but its exception lines', () => {
    const s = createStderrScrubber(scrubText);
    const chained = [
      'Traceback (most recent call last):',
      ...FRAMES,
      'KeyError: 3',
      '',
      'During handling of the above exception, another exception occurred:',
      '',
      'Traceback (most recent call last):',
      ...FRAMES,
      '  [Previous line repeated 3 more times]',
      NOT_FOUND,
      '',
    ].join('\n');
    const out = s.push(Buffer.from(chained)) + s.end();
    expectClean(out);
    expect(out).toContain('KeyError: 3\n');
    expect(out).toContain('ObjectNotFound: Object with key');
  });
});

describe('the stderr of a dict-format session (JSON log lines)', () => {
  it('keeps the exception line of a traceback message (borg serve --debug), nothing else of it', () => {
    const message = ['Traceback (most recent call last):\n', ...FRAMES.map((f) => `${f}\n`), `${NOT_FOUND}\n`].join('\n');
    const line = JSON.stringify({ type: 'log_message', time: 1796519390.18, message, levelname: 'DEBUG', name: 'root' });
    const s = createStderrScrubber(scrubText);
    const out = s.push(Buffer.from(`${line}\n`));
    expectClean(out);
    const parsed = JSON.parse(out) as { message: string; levelname: string };
    expect(parsed.levelname).toBe('DEBUG');
    expect(parsed.message.trim()).toBe(`borg.repository.Repository.ObjectNotFound: Object with key ${'ff'.repeat(32)} not found in repository /./main.`);
  });

  it('drops a log line that was nothing but server details', () => {
    const message = SYSINFO.join('\n');
    const s = createStderrScrubber(scrubText);
    expect(s.push(Buffer.from(`${JSON.stringify({ type: 'log_message', time: 1, message, levelname: 'ERROR', name: 'root' })}\n`))).toBe('');
  });
});

describe('createTextScrubber', () => {
  it('hides the processes named by borg\'s stale lock messages', () => {
    expect(scrubText('Killed stale lock vm@52233002442.4242-0.')).toBe('Killed stale lock (a server process)');
    expect(scrubText('Found stale lock vm.example@52233002442.4242-1f, but not deleting because self.kill_stale_locks = False.')).toBe(
      'Found stale lock (a server process), but not deleting because self.kill_stale_locks = False.',
    );
    expect(scrubText('Removed stale exclusive roster lock for host vm@52233002442 pid 4242 thread 0.')).toBe(
      'Removed stale exclusive roster lock for a server process.',
    );
  });

  it('hides paths of the server\'s Python installation, also outside tracebacks (warnings)', () => {
    expect(scrubText('/usr/lib/python3/dist-packages/borg/helpers/misc.py:12: DeprecationWarning: old')).toBe('DeprecationWarning: old');
    expect(scrubText("cannot import '/usr/local/lib/python3.11/site-packages/x.so'")).toBe("cannot import '(server)'");
    expect(scrubText(`${REPO}/lock.exclusive`)).toBe('/./main/lock.exclusive');
  });

  it('leaves ordinary messages as they were', () => {
    const msg = 'Failed to create/acquire the lock /./main/lock.exclusive (timeout).';
    expect(scrubText(msg)).toBe(msg);
    expect(scrubText('Remote: Verified integrity of /./main/index.5')).toBe('Remote: Verified integrity of /./main/index.5');
  });

  it('is linear on a long line of path-like words', () => {
    const long = '/a'.repeat(500_000);
    const started = Date.now();
    expect(scrubText(long)).toBe(long);
    expect(Date.now() - started).toBeLessThan(2000);
  });
});

describe('createTracebackFilter', () => {
  it('keeps what follows the exception line', () => {
    const keep = createTracebackFilter();
    const lines = ['Traceback (most recent call last):', ...FRAMES, 'ValueError: x', '  indented but after the exception'];
    expect(lines.filter(keep)).toEqual(['ValueError: x', '  indented but after the exception']);
  });
});
