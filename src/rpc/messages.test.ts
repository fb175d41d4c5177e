// RPC messages: requests as `borg serve` reads them (checked against python's view of real borg
// traffic), and replies as the borg client reads them (checked with borg's own client unpacker
// and with the real borg client talking to a stand-in server).

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureBorgTraffic, type BorgTraffic } from '../../test/support/borg-traffic.js';
import { borgPython, runPython } from '../../test/support/python.js';
import {
  POSITIONAL_ARGS,
  SCRUBBED_SYSINFO,
  argBytes,
  encodeExceptionReply,
  encodeRequest,
  encodeRequestWithData,
  encodeResultReply,
  parseReply,
  parseRequest,
  scrubExceptionReply,
  type RpcReply,
} from './messages.js';
import { FrameError, MsgMap, decode, encode, type EncodableValue, type MsgValue } from './msgpack.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const NEGOTIATE = Buffer.concat([hex('94 01 01 a9'), Buffer.from('negotiate'), hex('91 81 ae'), Buffer.from('client_version'), hex('94 01 02 04 ff')]);

const dictRequest = (entries: Array<[string, EncodableValue]>): Buffer => encode(MsgMap.of(entries as Array<[string, MsgValue]>));
const request = (msgid: number, method: string, args: Array<[string, MsgValue]>): Buffer =>
  dictRequest([['i', msgid], ['m', Buffer.from(method)], ['a', MsgMap.of(args)]]);

/**
 * How borg's client reads a reply: borg.helpers.msgpack.get_limited_unpacker('client'), then the
 * keys in wire order and a repr of every value (bytes stay bytes, arrays become tuples).
 */
function asBorgClientSees(frames: Buffer[]): Array<{ keys: string[] | null; repr: string }> {
  const script = `
import sys, json
from borg.helpers.msgpack import get_limited_unpacker
frames = json.loads(sys.stdin.read())
out = []
for h in frames:
    u = get_limited_unpacker('client')
    u.feed(bytes.fromhex(h))
    msgs = list(u)
    assert len(msgs) == 1, msgs
    m = msgs[0]
    out.append({'keys': [k.decode() for k in m.keys()] if isinstance(m, dict) else None, 'repr': repr(m)})
print(json.dumps(out))
`;
  return JSON.parse(runPython(script, JSON.stringify(frames.map((f) => f.toString('hex')))).toString());
}

describe('parseRequest', () => {
  it('reads the first message of a borg 1.2.4 client, a legacy tuple', () => {
    const req = parseRequest(NEGOTIATE);
    expect(req.format).toBe('tuple');
    expect(req.msgid).toBe(1);
    expect(req.method).toBe('negotiate');
    expect(req.unmappable).toBe(false);
    expect(req.frame).toBe(NEGOTIATE);
    expect([...req.args.keys()]).toEqual(['client_data']);
    const data = req.args.get('client_data');
    expect(data).toBeInstanceOf(MsgMap);
    expect((data as MsgMap).get('client_version')).toEqual([1, 2, 4, -1]);
    // the 1.0.x form: client_data is the int 2
    expect(parseRequest(encode([1, 1, 'negotiate', [2]])).args.get('client_data')).toBe(2);
  });

  it('uses the positional names of borg 1.2.4 (compatMap)', () => {
    const compat = JSON.parse(runPython('from borg.remote import compatMap; import json; print(json.dumps({k: list(v) for k, v in compatMap.items()}))').toString());
    expect(POSITIONAL_ARGS).toEqual(compat);
  });

  describe('on real borg traffic', () => {
    let traffic: BorgTraffic;
    let expected: Array<Array<{ format: string; msgid: number; method: string; args: Array<[string, string]> }>>;
    beforeAll(() => {
      traffic = captureBorgTraffic();
      // python's reading of every client frame: what borg serve makes of it, each argument re-packed
      const script = `
import sys, json, msgpack
from borg.remote import RepositoryServer
sessions = json.loads(sys.stdin.read())
out = []
for frames in sessions:
    res = []
    for h in frames:
        m = msgpack.unpackb(bytes.fromhex(h), raw=True, use_list=False)
        if isinstance(m, dict):
            fmt, msgid, method, args = 'dict', m[b'i'], m[b'm'].decode(), {k.decode(): v for k, v in m[b'a'].items()}
        else:
            _, msgid, method, argv = m
            method = method.decode()
            fmt, args = 'tuple', RepositoryServer.positional_to_named(None, method, argv)
        res.append({'format': fmt, 'msgid': msgid, 'method': method,
                    'args': [[k, msgpack.packb(v, use_bin_type=False).hex()] for k, v in args.items()]})
    out.append(res)
print(json.dumps(out))
`;
      expected = JSON.parse(runPython(script, JSON.stringify(traffic.sessions.map((s) => s.clientFrames.map((f) => f.toString('hex'))))).toString());
    }, 120_000);

    it('reads every request exactly as borg serve does', () => {
      const methods = new Set<string>();
      for (const [si, s] of traffic.sessions.entries()) {
        expect(s.clientFrames[0].equals(NEGOTIATE)).toBe(true);
        for (const [fi, frame] of s.clientFrames.entries()) {
          const req = parseRequest(frame);
          const want = expected[si][fi];
          expect({ format: req.format, msgid: req.msgid, method: req.method, unmappable: req.unmappable }).toEqual({
            format: want.format,
            msgid: want.msgid,
            method: want.method,
            unmappable: false,
          });
          expect([...req.args].map(([k, v]) => [k, encode(v).toString('hex')])).toEqual(want.args);
          expect(req.frame).toBe(frame);
          methods.add(req.method);
        }
      }
      // the sessions covered the calls of init, create, list and check
      for (const m of ['negotiate', 'open', 'save_key', 'get_free_nonce', 'commit_nonce_reservation', 'put', 'commit', '__len__', 'get', 'load_key', 'check', 'list']) {
        expect(methods).toContain(m);
      }
    });

    it('reads every reply of the real server', () => {
      const script = `
import sys, json, msgpack
out = []
for h in json.loads(sys.stdin.read()):
    m = msgpack.unpackb(bytes.fromhex(h), raw=True, use_list=False)
    if isinstance(m, dict):
        cls = m.get(b'exception_class')
        out.append({'format': 'dict', 'msgid': m[b'i'], 'cls': cls.decode() if cls else None,
                    'result': None if cls else msgpack.packb(m.get(b'r'), use_bin_type=False).hex()})
    else:
        out.append({'format': 'tuple', 'msgid': m[1], 'cls': m[2].decode() if m[2] else None,
                    'result': None if m[2] else msgpack.packb(m[3], use_bin_type=False).hex()})
print(json.dumps(out))
`;
      const frames = traffic.sessions.flatMap((s) => s.serverFrames);
      const want = JSON.parse(runPython(script, JSON.stringify(frames.map((f) => f.toString('hex')))).toString());
      let exceptions = 0;
      for (const [i, frame] of frames.entries()) {
        const reply = parseReply(frame);
        expect(reply).not.toBeNull();
        if (!reply) continue;
        expect({ format: reply.format, msgid: reply.msgid, cls: reply.exceptionClass }).toEqual({ format: want[i].format, msgid: want[i].msgid, cls: want[i].cls });
        if (want[i].cls === null) expect(encode(reply.result).toString('hex')).toBe(want[i].result);
        else exceptions++;
        expect(reply.frame).toBe(frame);
      }
      expect(exceptions).toBe(1); // list of the missing repository
    });

    it('scrubs a real borg serve exception: no traceback, no server paths, no sysinfo', () => {
      const s = traffic.sessions.find((x) => x.command === 'list-missing');
      const frame = s?.serverFrames.find((f) => parseReply(f)?.exceptionClass === 'DoesNotExist');
      expect(frame).toBeDefined();
      if (!frame) return;
      const serverDir = dirname(traffic.repoPath);
      expect(frame.includes(serverDir)).toBe(true);
      expect(frame.includes('Traceback')).toBe(true);
      expect(frame.includes('PID:')).toBe(true);
      const reply = parseReply(frame) as RpcReply;
      const seen: string[] = [];
      const scrubbed = scrubExceptionReply(reply, (t) => {
        seen.push(t);
        return t.split(serverDir).join('/client/view');
      });
      for (const leak of [serverDir, 'Traceback', 'PID:', 'sys.argv', 'SSH_ORIGINAL_COMMAND', 'dist-packages']) {
        expect(scrubbed.includes(leak), leak).toBe(false);
      }
      // the scrub function saw the args and the short lines, and nothing of the traceback
      expect(seen).toContain(`${serverDir}/missing`);
      expect(seen).toContain(`Repository ${serverDir}/missing does not exist.`);
      expect(seen.some((t) => t.includes('Traceback'))).toBe(false);
      const [client] = asBorgClientSees([scrubbed]);
      expect(client.keys).toEqual(['i', 'exception_class', 'exception_args', 'exception_full', 'exception_short', 'exception_trace', 'sysinfo']);
      expect(client.repr).toBe(
        "{b'i': 2, b'exception_class': b'DoesNotExist', b'exception_args': (b'/client/view/missing',), " +
          "b'exception_full': (b'Repository /client/view/missing does not exist.',), " +
          "b'exception_short': (b'Repository /client/view/missing does not exist.',), " +
          `b'exception_trace': False, b'sysinfo': b'${SCRUBBED_SYSINFO}'}`,
      );
    });
  });

  it('reads dict requests with their arguments in wire order', () => {
    const id = Buffer.alloc(32, 0xab);
    const frame = request(7, 'put', [['id', id], ['data', Buffer.from('payload')], ['wait', true]]);
    const req = parseRequest(frame);
    expect(req).toMatchObject({ format: 'dict', msgid: 7, method: 'put', unmappable: false });
    expect([...req.args.keys()]).toEqual(['id', 'data', 'wait']);
    expect(argBytes(req, 'id')?.equals(id)).toBe(true);
    expect(argBytes(req, 'data')?.toString()).toBe('payload');
    expect(argBytes(req, 'wait')).toBeUndefined();
    expect(argBytes(req, 'nope')).toBeUndefined();
    // the argument bytes are views into the frame
    expect(argBytes(req, 'id')?.buffer).toBe(frame.buffer);
    // keys in another order, and str8-typed keys (borg serve accepts both)
    const odd = parseRequest(Buffer.concat([hex('83 d9 01 61 80 d9 01 6d a7'), Buffer.from('__len__'), hex('d9 01 69 0c')]));
    expect(odd).toMatchObject({ format: 'dict', msgid: 12, method: '__len__' });
    expect(odd.args.size).toBe(0);
  });

  it('maps legacy tuple requests as borg serve does, including the 4-argument open', () => {
    const path = Buffer.from('/repo');
    const open6 = parseRequest(encode([1, 2, 'open', [path, false, 1, true, true, false]]));
    expect([...open6.args.keys()]).toEqual(['path', 'create', 'lock_wait', 'lock', 'exclusive', 'append_only']);
    expect(open6.args.get('exclusive')).toBe(true);
    const open4 = parseRequest(encode([1, 2, 'open', [path, true, null, false]]));
    expect(open4.unmappable).toBe(false);
    expect([...open4.args]).toEqual([['path', path], ['create', true], ['lock_wait', null], ['lock', false]]);
    // borg serve raises IndexError (and dies) for other short forms: unmappable
    for (const argv of [[path], [path, true, null], [path, true, null, true, true]]) {
      const r = parseRequest(encode([1, 2, 'open', argv]));
      expect(r.unmappable).toBe(true);
      expect(r.args.size).toBe(0);
    }
    // extra positional arguments are ignored, as borg serve ignores them
    const get = parseRequest(encode([1, 9, 'get', [Buffer.alloc(32, 1), 'extra']]));
    expect([...get.args.keys()]).toEqual(['id']);
    expect(parseRequest(encode([1, 9, 'put', [Buffer.alloc(32, 1)]])).unmappable).toBe(true);
    const commit = parseRequest(encode([1, 10, 'commit', [false]]));
    expect(commit).toMatchObject({ format: 'tuple', msgid: 10, method: 'commit', unmappable: false });
    expect([...commit.args]).toEqual([['save_space', false]]);
    // the first field is ignored by borg ("always 1")
    expect(parseRequest(encode([0, 3, '__len__', []])).method).toBe('__len__');
  });

  it('marks tuple requests for methods without a positional mapping as unmappable', () => {
    for (const method of ['scan', 'inject_exception', 'frobnicate', 'get_many', 'constructor', '__proto__', 'hasOwnProperty']) {
      const req = parseRequest(encode([1, 4, method, []]));
      expect(req).toMatchObject({ format: 'tuple', msgid: 4, method, unmappable: true });
      expect(req.args.size).toBe(0);
    }
  });

  it('throws FrameError on everything borg serve would die on, and on ambiguous requests', () => {
    const bad: Array<[string, Buffer]> = [
      ['duplicate key i', dictRequest([['i', 1], ['i', 2], ['m', Buffer.from('get')], ['a', new MsgMap()]])],
      ['duplicate key m', dictRequest([['i', 1], ['m', Buffer.from('get')], ['m', Buffer.from('put')], ['a', new MsgMap()]])],
      ['duplicate argument', request(1, 'get', [['id', Buffer.alloc(32)], ['id', Buffer.alloc(32, 1)]])],
      ['float msgid', dictRequest([['i', 1.5], ['m', Buffer.from('get')], ['a', new MsgMap()]])],
      ['string msgid', dictRequest([['i', Buffer.from('1')], ['m', Buffer.from('get')], ['a', new MsgMap()]])],
      ['nil msgid', dictRequest([['i', null], ['m', Buffer.from('get')], ['a', new MsgMap()]])],
      ['64-bit msgid', dictRequest([['i', 2n ** 64n - 1n], ['m', Buffer.from('get')], ['a', new MsgMap()]])],
      ['missing i', dictRequest([['m', Buffer.from('get')], ['a', new MsgMap()]])],
      ['missing m', dictRequest([['i', 1], ['a', new MsgMap()]])],
      ['missing a', dictRequest([['i', 1], ['m', Buffer.from('get')]])],
      ['int method', dictRequest([['i', 1], ['m', 5], ['a', new MsgMap()]])],
      ['nil method', dictRequest([['i', 1], ['m', null], ['a', new MsgMap()]])],
      ['array method', dictRequest([['i', 1], ['m', [Buffer.from('get')]], ['a', new MsgMap()]])],
      ['method with a space', dictRequest([['i', 1], ['m', Buffer.from('get id')], ['a', new MsgMap()]])],
      ['empty method', dictRequest([['i', 1], ['m', Buffer.alloc(0)], ['a', new MsgMap()]])],
      ['method with NUL', dictRequest([['i', 1], ['m', Buffer.from('get\0')], ['a', new MsgMap()]])],
      ['args as array', dictRequest([['i', 1], ['m', Buffer.from('get')], ['a', [Buffer.alloc(32)]]])],
      ['args nil', dictRequest([['i', 1], ['m', Buffer.from('get')], ['a', null]])],
      ['args as string', dictRequest([['i', 1], ['m', Buffer.from('get')], ['a', Buffer.from('x')]])],
      ['int key', encode(new MsgMap([[1, 1], [Buffer.from('i'), 1], [Buffer.from('m'), Buffer.from('get')], [Buffer.from('a'), new MsgMap()]]))],
      ['int argument name', dictRequest([['i', 1], ['m', Buffer.from('get')], ['a', new MsgMap([[7, Buffer.alloc(32)]])]])],
      ['3-tuple', encode([1, 1, 'get'])],
      ['5-tuple', encode([1, 1, 'get', [], []])],
      ['tuple with float msgid', encode([1, 1.5, 'get', [Buffer.alloc(32)]])],
      ['tuple with int method', encode([1, 1, 7, []])],
      ['tuple with map args', encode([1, 1, 'get', MsgMap.of([['id', Buffer.alloc(32)]])])],
      ['int', encode(5)],
      ['string', encode('get')],
      ['trailing bytes', Buffer.concat([NEGOTIATE, hex('c0')])],
      ['truncated', NEGOTIATE.subarray(0, NEGOTIATE.length - 1)],
    ];
    for (const [name, frame] of bad) expect(() => parseRequest(frame), name).toThrow(FrameError);
  });
});

describe('encodeRequest', () => {
  it('writes dict requests as the borg client does (i, m, a)', () => {
    const args = new Map<string, EncodableValue>([['path', Buffer.from('/srv/r')], ['create', false], ['lock_wait', 1], ['lock', true], ['exclusive', true], ['append_only', false], ['make_parent_dirs', false]]);
    const ours = encodeRequest('dict', 2, 'open', args);
    const want = runPython(
      "import msgpack, sys; sys.stdout.buffer.write(msgpack.packb({b'i': 2, b'm': b'open', b'a': {b'path': b'/srv/r', b'create': False, b'lock_wait': 1, b'lock': True, b'exclusive': True, b'append_only': False, b'make_parent_dirs': False}}, use_bin_type=False))",
    );
    expect(ours.toString('hex')).toBe(want.toString('hex'));
    const back = parseRequest(ours);
    expect([...back.args.keys()]).toEqual([...args.keys()]);
  });

  it('writes tuple requests in positional order, leaving out names the method does not have', () => {
    const args = new Map<string, EncodableValue>([['lock', true], ['path', Buffer.from('/r')], ['create', false], ['lock_wait', null], ['exclusive', null], ['append_only', false], ['make_parent_dirs', false]]);
    const ours = encodeRequest('tuple', 2, 'open', args);
    expect(ours.equals(encode([1, 2, 'open', [Buffer.from('/r'), false, null, true, null, false]]))).toBe(true);
    expect(parseRequest(ours).args.get('path')).toEqual(Buffer.from('/r'));
  });

  it('writes a put with its data filled in place as the same bytes as encodeRequest, at every raw header size', () => {
    const id = Buffer.alloc(32, 7);
    for (const size of [0, 1, 31, 32, 65535, 65536, 2 * 1024 * 1024 + 1]) {
      const data = Buffer.alloc(size, 0x5a);
      for (const extra of [[], [['wait', false]]] as Array<Array<[string, EncodableValue]>>) {
        const { frame, dataAt } = encodeRequestWithData(9, 'put', new Map([['id', id], ...extra]), 'data', size);
        data.copy(frame, dataAt);
        expect(frame.length - dataAt).toBe(size);
        expect(frame.equals(encodeRequest('dict', 9, 'put', new Map<string, EncodableValue>([['id', id], ...extra, ['data', data]]))), `${size} bytes`).toBe(true);
        const back = parseRequest(frame);
        expect(argBytes(back, 'data')?.equals(data) && argBytes(back, 'id')?.equals(id)).toBe(true);
      }
    }
  });
});

describe('replies', () => {
  it('result replies decode in borg client form: {i, r} or (1, msgid, None, result)', () => {
    const frames = [
      encodeResultReply('dict', 5, null),
      encodeResultReply('dict', 6, Buffer.alloc(32, 0x41)),
      encodeResultReply('tuple', 1, MsgMap.of([['server_version', [1, 2, 4, -1]]])),
      encodeResultReply('tuple', 1, 2),
      encodeResultReply('dict', 7, [Buffer.from('a'), Buffer.from('b')]),
    ];
    const seen = asBorgClientSees(frames);
    expect(seen.map((x) => x.repr)).toEqual([
      "{b'i': 5, b'r': None}",
      `{b'i': 6, b'r': b'${'A'.repeat(32)}'}`,
      "(1, 1, None, {b'server_version': (1, 2, 4, -1)})",
      '(1, 1, None, 2)',
      "{b'i': 7, b'r': (b'a', b'b')}",
    ]);
    expect(seen[0].keys).toEqual(['i', 'r']);
    // byte-exact with what borg serve sends for the negotiate reply (fact sheet A.4)
    expect(frames[2].equals(Buffer.concat([hex('94 01 01 c0 81 ae'), Buffer.from('server_version'), hex('94 01 02 04 ff')]))).toBe(true);
  });

  it('exception replies carry borg keys in borg order, as raw strings', () => {
    const frames = [
      encodeExceptionReply('dict', 9, { exceptionClass: 'PathNotAllowed', message: 'Repository path not allowed: /x', args: ['/x'] }),
      encodeExceptionReply('dict', 10, { exceptionClass: 'BorgkeepDenied', message: 'put refused: the read role may not write objects', trace: false }),
      encodeExceptionReply('dict', 11, { exceptionClass: 'ObjectNotFound', message: 'Object with key 00 not found', args: ['00', 3, null], trace: true }),
      encodeExceptionReply('tuple', 12, { exceptionClass: 'PermissionDenied', message: 'no' }),
      encodeExceptionReply('dict', 13, { exceptionClass: 'Ünïcode', message: 'grüße' }),
    ];
    const seen = asBorgClientSees(frames);
    const KEYS = ['i', 'exception_class', 'exception_args', 'exception_full', 'exception_short', 'exception_trace', 'sysinfo'];
    for (const i of [0, 1, 2, 4]) expect(seen[i].keys).toEqual(KEYS);
    const sys = `b'${SCRUBBED_SYSINFO}'`;
    expect(seen[0].repr).toBe(
      `{b'i': 9, b'exception_class': b'PathNotAllowed', b'exception_args': (b'/x',), b'exception_full': (b'Repository path not allowed: /x',), b'exception_short': (b'Repository path not allowed: /x',), b'exception_trace': False, b'sysinfo': ${sys}}`,
    );
    expect(seen[1].repr).toBe(
      `{b'i': 10, b'exception_class': b'BorgkeepDenied', b'exception_args': (b'put refused: the read role may not write objects',), b'exception_full': (b'put refused: the read role may not write objects',), b'exception_short': (b'put refused: the read role may not write objects',), b'exception_trace': False, b'sysinfo': ${sys}}`,
    );
    expect(seen[2].repr).toContain("b'exception_args': (b'00', 3, None)");
    expect(seen[2].repr).toContain("b'exception_trace': True");
    expect(seen[3].repr).toBe("(1, 12, b'PermissionDenied', b'no')");
    expect(seen[4].repr).toContain(`b'exception_class': ${pyBytes('Ünïcode')}`);
    expect(seen[4].repr).toContain(`b'exception_short': (${pyBytes('grüße')},)`);
  });

  describe('with the real borg client', () => {
    let dir: string;
    const FAKE_SERVER = `
import os, sys, msgpack
reply = open(os.environ['FAKE_REPLY'], 'rb').read()
u = msgpack.Unpacker(raw=True, use_list=False)
out = sys.stdout.buffer
while True:
    data = os.read(0, 65536)
    if not data:
        break
    u.feed(data)
    for m in u:
        if isinstance(m, tuple):
            out.write(msgpack.packb((1, m[1], None, {b'server_version': (1, 2, 4, -1)}), use_bin_type=False))
        elif m[b'm'] == b'open':
            out.write(reply)
        else:
            out.write(msgpack.packb({b'i': m[b'i'], b'r': None}, use_bin_type=False))
        out.flush()
`;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'borgkeep-messages-'));
      writeFileSync(join(dir, 'fake-server.py'), FAKE_SERVER);
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    /** Runs `borg list` against a server that answers `open` with `reply`. */
    function borgListWithOpenReply(reply: Buffer): { status: number | null; stderr: string } {
      writeFileSync(join(dir, 'reply.bin'), reply);
      const r = spawnSync('borg', ['list', 'ssh://borg@server/./repo'], {
        cwd: dir,
        env: {
          ...process.env,
          BORG_RSH: `${borgPython()} ${join(dir, 'fake-server.py')}`,
          FAKE_REPLY: join(dir, 'reply.bin'),
          BORG_BASE_DIR: join(dir, 'base'),
        },
        encoding: 'utf8',
        timeout: 60_000,
      });
      return { status: r.status, stderr: r.stderr };
    }

    it('prints a denial as one clear line and exits with an error, without a traceback', () => {
      const message = 'open refused: the key has no grant for this repository';
      const r = borgListWithOpenReply(encodeExceptionReply('dict', 2, { exceptionClass: 'BorgkeepDenied', message }));
      expect(r.status).toBe(2);
      expect(r.stderr.trim()).toBe(message);
    });

    it('turns PathNotAllowed back into borg\'s own error with the path from exception_args', () => {
      const r = borgListWithOpenReply(
        encodeExceptionReply('dict', 2, { exceptionClass: 'PathNotAllowed', message: 'Repository path not allowed: ./repo', args: ['./repo'] }),
      );
      expect(r.status).toBe(2);
      expect(r.stderr.trim()).toBe('Repository path not allowed: ./repo');
    });

    it('shows a scrubbed traceback-worthy exception without server details', () => {
      const original = encode(
        MsgMap.of([
          ['i', 2],
          ['exception_class', Buffer.from('ValueError')],
          ['exception_args', [Buffer.from('bad value in /srv/borgkeep/repos/abc')]],
          ['exception_full', [Buffer.from('Traceback (most recent call last):\n'), Buffer.from('  File "/usr/lib/python3/dist-packages/borg/remote.py"\n'), Buffer.from('ValueError: bad value in /srv/borgkeep/repos/abc\n')]],
          ['exception_short', [Buffer.from('ValueError: bad value in /srv/borgkeep/repos/abc\n')]],
          ['exception_trace', true],
          // A PID above Linux's pid_max: the client prints its own PID, which may be any real one.
          ['sysinfo', Buffer.from('PID: 4194999  CWD: /srv/borgkeep\nSSH_ORIGINAL_COMMAND: borg serve\n')],
        ]),
      );
      const scrubbed = scrubExceptionReply(parseReply(original) as RpcReply, (t) => t.split('/srv/borgkeep/repos/abc').join('./repo'));
      const r = borgListWithOpenReply(scrubbed);
      expect(r.status).toBe(2);
      expect(r.stderr).toContain('ValueError: bad value in ./repo');
      for (const leak of ['/srv/borgkeep', 'PID: 4194999', 'dist-packages', 'SSH_ORIGINAL_COMMAND: borg']) expect(r.stderr).not.toContain(leak);
    });
  });
});

function pyBytes(s: string): string {
  return `b'${[...Buffer.from(s, 'utf8')].map((b) => (b >= 0x20 && b < 0x7f && b !== 0x27 && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`)).join('')}'`;
}

describe('scrubExceptionReply', () => {
  const reply = (entries: Array<[string, MsgValue]>): RpcReply => parseReply(encode(MsgMap.of(entries))) as RpcReply;

  it('applies the scrub function to string args and short lines only, keeping other args', () => {
    const r = reply([
      ['i', 4],
      ['exception_class', Buffer.from('IntegrityError')],
      ['exception_args', [Buffer.from('segment /srv/x/data/0/1 is bad'), 17, null]],
      ['exception_full', [Buffer.from('Traceback: /srv/x/secret.py')]],
      ['exception_short', [Buffer.from('line one /srv/x'), Buffer.from('line two')]],
      ['exception_trace', false],
      ['sysinfo', Buffer.from('PID: 1')],
    ]);
    const calls: string[] = [];
    const out = decode(scrubExceptionReply(r, (t) => (calls.push(t), t.replace('/srv/x', '(repo)')))) as MsgMap;
    expect(calls.sort()).toEqual(['line one /srv/x', 'line two', 'segment /srv/x/data/0/1 is bad']);
    expect(out.entries.map(([k]) => (k as Buffer).toString())).toEqual(['i', 'exception_class', 'exception_args', 'exception_full', 'exception_short', 'exception_trace', 'sysinfo']);
    expect(out.get('i')).toBe(4);
    expect((out.get('exception_class') as Buffer).toString()).toBe('IntegrityError');
    expect((out.get('exception_args') as MsgValue[]).map((v) => (Buffer.isBuffer(v) ? v.toString() : v))).toEqual(['segment (repo)/data/0/1 is bad', 17, null]);
    expect((out.get('exception_short') as Buffer[]).map(String)).toEqual(['line one (repo)', 'line two']);
    expect((out.get('exception_full') as Buffer[]).map(String)).toEqual(['line one (repo)', 'line two']);
    expect(out.get('exception_trace')).toBe(false);
    expect((out.get('sysinfo') as Buffer).toString()).toBe(SCRUBBED_SYSINFO);
  });

  it('scrubs strings inside nested args, keeps bytes that are not UTF-8 byte for byte, and never passes on exception_full or unknown keys', () => {
    const binary = Buffer.from([0xff, 0x00, 0x2f, 0x80]);
    const r = reply([
      ['i', 5],
      ['exception_class', Buffer.from('OSError')],
      ['exception_args', [[Buffer.from('/srv/x/a'), 2], binary]],
      ['exception_full', [Buffer.from('Traceback (most recent call last):\n'), Buffer.from('  File "/usr/lib/python3/dist-packages/borg/remote.py", line 240, in serve\n')]],
      ['exception_short', [Buffer.from('/srv/x')]],
      ['exception_trace', true],
      ['sysinfo', Buffer.from('PID: 1')],
      ['extra', Buffer.from('/srv/x PID: 77')],
    ]);
    const out = scrubExceptionReply(r, (t) => t.split('/srv/x').join('(repo)'));
    const map = decode(out) as MsgMap;
    expect(map.entries.map(([k]) => (k as Buffer).toString())).not.toContain('extra');
    const [nested, bin] = map.get('exception_args') as MsgValue[];
    expect((nested as MsgValue[]).map((v) => (Buffer.isBuffer(v) ? v.toString() : v))).toEqual(['(repo)/a', 2]);
    expect(bin).toEqual(binary);
    expect((map.get('exception_full') as Buffer[]).map(String)).toEqual(['(repo)']);
    for (const leak of ['/srv/x', 'Traceback', 'dist-packages', 'line 240', 'PID']) expect(out.includes(leak), leak).toBe(false);
  });

  it('shows the class when the scrubbed short text is empty', () => {
    const r = reply([['i', 6], ['exception_class', Buffer.from('ValueError')], ['exception_short', [Buffer.from('secret')]]]);
    const map = decode(scrubExceptionReply(r, () => '')) as MsgMap;
    expect((map.get('exception_short') as Buffer[]).map(String)).toEqual(['ValueError']);
  });

  it('fills in what an old or odd server left out', () => {
    const out = decode(scrubExceptionReply(reply([['i', 4], ['exception_class', Buffer.from('Oops')]]), (t) => t)) as MsgMap;
    expect(out.get('exception_args')).toEqual([]);
    expect((out.get('exception_short') as Buffer[]).map(String)).toEqual(['Oops']);
    expect((out.get('exception_full') as Buffer[]).map(String)).toEqual(['Oops']);
    expect(out.get('exception_trace')).toBe(true);
    expect((out.get('sysinfo') as Buffer).toString()).toBe(SCRUBBED_SYSINFO);
  });

  it('answers tuple exceptions with borg\'s generic remote exception text', () => {
    const r = parseReply(encode([1, 3, 'PathNotAllowed', 'Repository path not allowed: /srv/secret'])) as RpcReply;
    const out = scrubExceptionReply(r, () => 'never called');
    expect(decode(out)).toEqual([1, 3, Buffer.from('PathNotAllowed'), Buffer.from('Remote Exception (see remote log for the traceback)')]);
    expect(out.includes('/srv/secret')).toBe(false);
  });
});

describe('parseReply', () => {
  it('reads dict and tuple results and exceptions', () => {
    const id = Buffer.alloc(32, 3);
    expect(parseReply(encodeResultReply('dict', 8, id))).toMatchObject({ format: 'dict', msgid: 8, exceptionClass: null, result: id });
    expect(parseReply(encode(MsgMap.of([['i', 8]])))).toMatchObject({ format: 'dict', msgid: 8, exceptionClass: null, result: null });
    const exc = parseReply(encodeExceptionReply('dict', 9, { exceptionClass: 'ObjectNotFound', message: 'gone' }));
    expect(exc).toMatchObject({ format: 'dict', msgid: 9, exceptionClass: 'ObjectNotFound', result: null });
    expect(exc?.value).toBeInstanceOf(MsgMap);
    expect(parseReply(encode(MsgMap.of([['i', 9], ['exception_class', 5]])))?.exceptionClass).toBe('Exception');
    const tupleResult = parseReply(encode([1, 1, null, MsgMap.of([['server_version', [1, 2, 4, -1]]])]));
    expect(tupleResult).toMatchObject({ format: 'tuple', msgid: 1, exceptionClass: null });
    expect((tupleResult?.result as MsgMap).get('server_version')).toEqual([1, 2, 4, -1]);
    expect(parseReply(encode([1, 4, 'DoesNotExist', 'Remote Exception']))).toMatchObject({ format: 'tuple', msgid: 4, exceptionClass: 'DoesNotExist', result: null });
    expect(parseReply(encode([1, 4, 7, 'x']))?.exceptionClass).toBe('Exception');
  });

  it('returns null for anything that is not a reply', () => {
    const junk: Buffer[] = [
      Buffer.alloc(0),
      hex('c1'),
      hex('c4 01 00'),
      Buffer.from('Borg 1.2.4: Got connection close before repository was opened.\n'),
      encode(5),
      encode(Buffer.from('text')),
      encode([1, 2, null]),
      encode([1, Buffer.from('x'), null, 1]),
      encode([1, 2.5, null, 1]),
      encode(MsgMap.of([['r', 1]])),
      encode(MsgMap.of([['i', Buffer.from('1')], ['r', 1]])),
      encode(MsgMap.of([['i', 2n ** 64n - 1n], ['r', 1]])),
      encodeResultReply('dict', 3, 1).subarray(0, 3),
      Buffer.concat([encodeResultReply('dict', 3, 1), hex('00')]),
      hex('dd ff ff ff ff'),
      hex('df ff ff ff ff'),
      Buffer.alloc(100_000, 0x91),
    ];
    for (const j of junk) expect(parseReply(j), j.subarray(0, 16).toString('hex')).toBeNull();
  });
});
