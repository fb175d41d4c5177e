// borg RPC messages (fact sheet A.4, A.5): requests in the legacy tuple and the dict format,
// replies in the format of their request, and borg-compatible exception replies.
//
// parseRequest() only accepts what `borg serve` itself would parse without dying, and stricter
// still (duplicate keys, non-integer msgids): anything else is a FrameError and ends the session.

import { isUtf8 } from 'node:buffer';

import { FrameError, MsgMap, decode, encode, rawEquals, rawHeader, type EncodableValue, type MsgValue } from './msgpack.js';

export type MessageFormat = 'tuple' | 'dict';

export interface RpcRequest {
  readonly format: MessageFormat;
  readonly msgid: number;
  readonly method: string;
  /** Named arguments; for tuple requests mapped from positions as `borg serve` does. */
  readonly args: ReadonlyMap<string, MsgValue>;
  /** Tuple requests whose method has no positional mapping: `borg serve` would crash on them. */
  readonly unmappable: boolean;
  /** The exact bytes received. */
  readonly frame: Buffer;
}

/** borg 1.2's `compatMap`: positional argument names of tuple-format requests. */
export const POSITIONAL_ARGS: Readonly<Record<string, readonly string[]>> = {
  check: ['repair', 'save_space'],
  commit: ['save_space'],
  rollback: [],
  destroy: [],
  __len__: [],
  list: ['limit', 'marker'],
  put: ['id', 'data'],
  get: ['id'],
  delete: ['id'],
  save_key: ['keydata'],
  load_key: [],
  break_lock: [],
  negotiate: ['client_data'],
  open: ['path', 'create', 'lock_wait', 'lock', 'exclusive', 'append_only'],
  get_free_nonce: [],
  commit_nonce_reservation: ['next_unreserved', 'start_nonce'],
};

const METHOD_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

function isMsgid(v: MsgValue | undefined): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

function methodName(v: MsgValue | undefined): string {
  if (!Buffer.isBuffer(v)) throw new FrameError('a request names its method with something other than a string');
  const name = v.toString('latin1', 0, v.length);
  if (!METHOD_NAME.test(name)) throw new FrameError('a request names a method that is not a valid method name');
  return name;
}

/** Decodes and checks one request frame from a borg client. */
export function parseRequest(frame: Buffer): RpcRequest {
  const v = decode(frame);
  if (v instanceof MsgMap) {
    const seen = new Set<string>();
    for (const [k] of v.entries) {
      if (!Buffer.isBuffer(k)) throw new FrameError('a request has a key that is not a string');
      const key = k.toString('latin1', 0, k.length);
      if (seen.has(key)) throw new FrameError(`a request has the key '${key}' twice`);
      seen.add(key);
    }
    const msgid = v.get('i');
    const m = v.get('m');
    const a = v.get('a');
    if (!isMsgid(msgid)) throw new FrameError('a request has no integer message id');
    if (m === undefined || a === undefined) throw new FrameError('a request lacks its method or its arguments');
    if (!(a instanceof MsgMap)) throw new FrameError('a request has arguments that are not a map');
    const method = methodName(m);
    const args = new Map<string, MsgValue>();
    for (const [k, val] of a.entries) {
      if (!Buffer.isBuffer(k)) throw new FrameError(`a ${method} request has an argument name that is not a string`);
      const name = k.toString('latin1', 0, k.length);
      if (args.has(name)) throw new FrameError(`a ${method} request has the argument '${name}' twice`);
      args.set(name, val);
    }
    return { format: 'dict', msgid, method, args, unmappable: false, frame };
  }
  if (Array.isArray(v) && v.length === 4) {
    const [, msgid, m, positional] = v;
    if (!isMsgid(msgid)) throw new FrameError('a request has no integer message id');
    const method = methodName(m);
    if (!Array.isArray(positional)) throw new FrameError(`a ${method} request has arguments that are not a list`);
    const names = Object.hasOwn(POSITIONAL_ARGS, method) ? POSITIONAL_ARGS[method] : undefined;
    const args = new Map<string, MsgValue>();
    if (names === undefined) return { format: 'tuple', msgid, method, args, unmappable: true, frame };
    // borg 1.0.x before 1.0.7 sent open() with 4 arguments; borg serve accepts that too.
    const count = method === 'open' && positional.length === 4 ? 4 : names.length;
    if (positional.length < count) return { format: 'tuple', msgid, method, args, unmappable: true, frame };
    for (let i = 0; i < count; i++) args.set(names[i], positional[i]);
    return { format: 'tuple', msgid, method, args, unmappable: false, frame };
  }
  throw new FrameError('a message is neither a request map nor a 4-element request tuple');
}

/** Encodes a request, e.g. the guard's own rewritten `open`. Dict requests keep i, m, a order. */
export function encodeRequest(format: MessageFormat, msgid: number, method: string, args: ReadonlyMap<string, EncodableValue>): Buffer {
  if (format === 'dict') {
    const a = new MsgMap([...args].map(([k, val]) => [Buffer.from(k, 'latin1'), val as MsgValue]));
    return encode(MsgMap.of([['i', msgid], ['m', Buffer.from(method, 'latin1')], ['a', a]]));
  }
  const names = POSITIONAL_ARGS[method] ?? [];
  return encode([1, msgid, method, names.filter((n) => args.has(n)).map((n) => args.get(n))]);
}

/**
 * A dict-format request whose last argument, `dataName`, is `dataLength` raw bytes the caller
 * writes into the frame at `dataAt` (a put sealed in place: no object-sized copy into a frame).
 * The same bytes as encodeRequest('dict', …) with the data as the last argument.
 */
export function encodeRequestWithData(
  msgid: number,
  method: string,
  args: ReadonlyMap<string, EncodableValue>,
  dataName: string,
  dataLength: number,
  allocate: (size: number) => Buffer = Buffer.allocUnsafe,
): { frame: Buffer; dataAt: number } {
  // Encoded with empty data, the frame ends in the raw header of length 0 (one byte, 0xa0):
  // that byte is replaced by the header of the real length.
  const empty = encodeRequest('dict', msgid, method, new Map([...args].filter(([k]) => k !== dataName).concat([[dataName, Buffer.alloc(0)]])));
  const head = rawHeader(dataLength);
  const size = empty.length - 1 + head.length + dataLength;
  const frame = allocate(size).subarray(0, size);
  empty.copy(frame, 0, 0, empty.length - 1);
  head.copy(frame, empty.length - 1);
  return { frame, dataAt: empty.length - 1 + head.length };
}

export interface RpcReply {
  readonly format: MessageFormat;
  readonly msgid: number;
  /** The exception class name, or null for a result. */
  readonly exceptionClass: string | null;
  readonly result: MsgValue;
  /** The decoded reply (a MsgMap for dict replies), for scrubbing. */
  readonly value: MsgValue;
  readonly frame: Buffer;
}

/** Decodes a reply from `borg serve`; returns null for anything that is not a reply. */
export function parseReply(frame: Buffer): RpcReply | null {
  let v: MsgValue;
  try {
    v = decode(frame);
  } catch {
    return null;
  }
  if (v instanceof MsgMap) {
    const msgid = v.get('i');
    if (!isMsgid(msgid)) return null;
    const cls = v.get('exception_class');
    if (cls !== undefined) {
      return { format: 'dict', msgid, exceptionClass: Buffer.isBuffer(cls) ? cls.toString('utf8') : 'Exception', result: null, value: v, frame };
    }
    return { format: 'dict', msgid, exceptionClass: null, result: v.get('r') ?? null, value: v, frame };
  }
  if (Array.isArray(v) && v.length === 4 && isMsgid(v[1])) {
    const cls = v[2];
    return {
      format: 'tuple',
      msgid: v[1],
      exceptionClass: cls === null ? null : Buffer.isBuffer(cls) ? cls.toString('utf8') : 'Exception',
      result: cls === null ? v[3] : null,
      value: v,
      frame,
    };
  }
  return null;
}

/** A successful reply in the given format. */
export function encodeResultReply(format: MessageFormat, msgid: number, result: EncodableValue): Buffer {
  return format === 'dict' ? encode(MsgMap.of([['i', msgid], ['r', result as MsgValue]])) : encode([1, msgid, null, result]);
}

export interface ExceptionInfo {
  readonly exceptionClass: string;
  /** What the borg client prints (exception_short). */
  readonly message: string;
  /** exception_args; defaults to [message]. */
  readonly args?: readonly EncodableValue[];
  /** Whether the client treats it as a traceback-worthy error. */
  readonly trace?: boolean;
}

/** The text put in `sysinfo` of every reply the guard writes or scrubs. */
export const SCRUBBED_SYSINFO = 'Server details are not shown by borgkeep.';

/**
 * An exception reply the borg client prints as a clear message. Dict replies carry the keys in
 * borg's order; exception_full is the message itself, sysinfo says nothing about the server.
 */
export function encodeExceptionReply(format: MessageFormat, msgid: number, info: ExceptionInfo): Buffer {
  if (format === 'tuple') return encode([1, msgid, info.exceptionClass, info.message]);
  return encode(
    MsgMap.of([
      ['i', msgid],
      ['exception_class', Buffer.from(info.exceptionClass, 'utf8')],
      ['exception_args', (info.args ?? [info.message]) as MsgValue[]],
      ['exception_full', [Buffer.from(info.message, 'utf8')]],
      ['exception_short', [Buffer.from(info.message, 'utf8')]],
      ['exception_trace', info.trace ?? false],
      ['sysinfo', Buffer.from(SCRUBBED_SYSINFO, 'utf8')],
    ]),
  );
}

/**
 * Re-encodes an exception reply of `borg serve` without what would tell the client about the
 * server. Of the fields borg 1.2 sends: exception_class stays; `scrub` rewrites each string of
 * exception_args (also inside nested lists) and exception_short (real paths become the client's
 * path, traceback frames go); exception_full becomes the scrubbed short text (never the
 * traceback, which names server files and lines); exception_trace stays; sysinfo (PID, CWD,
 * argv, SSH_ORIGINAL_COMMAND) is replaced; any other key is dropped. A tuple reply carries only
 * the class and borg's own fixed text; its message reaches the client on stderr, scrubbed there.
 */
export function scrubExceptionReply(reply: RpcReply, scrub: (text: string) => string): Buffer {
  if (reply.format === 'tuple' || !(reply.value instanceof MsgMap)) {
    return encode([1, reply.msgid, reply.exceptionClass ?? 'Exception', 'Remote Exception (see remote log for the traceback)']);
  }
  const v = reply.value;
  const scrubValue = (x: MsgValue | undefined): MsgValue => {
    if (Array.isArray(x)) return x.map(scrubValue);
    if (!Buffer.isBuffer(x)) return x ?? null;
    // borg packs every string as raw bytes; bytes that are not UTF-8 go through latin1, which
    // keeps each byte as it was where no rule applies.
    const encoding = isUtf8(x) ? 'utf8' : 'latin1';
    return Buffer.from(scrub(x.toString(encoding)), encoding);
  };
  const cls = reply.exceptionClass ?? 'Exception';
  const rawArgs = v.get('exception_args');
  const args = Array.isArray(rawArgs) ? rawArgs.map(scrubValue) : [];
  const rawShort = v.get('exception_short');
  const shortLines = Array.isArray(rawShort) ? rawShort.map(scrubValue).filter((x) => !Buffer.isBuffer(x) || x.length > 0) : [];
  const short = shortLines.length > 0 ? shortLines : [Buffer.from(cls, 'utf8')];
  const trace = v.get('exception_trace');
  return encode(
    MsgMap.of([
      ['i', reply.msgid],
      ['exception_class', Buffer.from(cls, 'utf8')],
      ['exception_args', args],
      ['exception_full', short],
      ['exception_short', short],
      ['exception_trace', typeof trace === 'boolean' ? trace : true],
      ['sysinfo', Buffer.from(SCRUBBED_SYSINFO, 'utf8')],
    ]),
  );
}

/** Reads a named argument as a raw string, or undefined when absent. */
export function argBytes(req: RpcRequest, name: string): Buffer | undefined {
  const v = req.args.get(name);
  return Buffer.isBuffer(v) ? v : undefined;
}

export { rawEquals };
