// A hand-written borg RPC client for hostile-client tests: speaks the protocol directly to
// `borgkeep borg-serve`, so a test can send what no stock borg client would.

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';

import { createFrameSplitter } from '../../src/rpc/frame-splitter.js';
import { CLIENT_LIMITS, MsgMap, decode, encode, type EncodableValue, type MsgValue } from '../../src/rpc/msgpack.js';
import { BORGKEEP, type BorgkeepEnv } from './borgkeep-env.js';

export interface Reply {
  msgid: number;
  exceptionClass: string | null;
  result: MsgValue;
  /** exception_short joined, as the borg client prints it. */
  message: string;
  raw: MsgValue;
}

export interface RpcClient {
  /** Sends raw bytes. */
  send(bytes: Buffer): void;
  /** Sends a dict-format request and waits for its reply. */
  call(method: string, args?: Record<string, EncodableValue>, timeoutMs?: number): Promise<Reply>;
  /** Sends a dict-format request without waiting; returns its msgid. */
  request(method: string, args?: Record<string, EncodableValue>): number;
  /** Waits for the reply to a msgid. */
  reply(msgid: number, timeoutMs?: number): Promise<Reply>;
  negotiate(): Promise<Reply>;
  /** Negotiates and opens `path`; throws unless the open succeeded. */
  open(path: string, opts?: Record<string, EncodableValue>): Promise<Reply>;
  /** Closes stdin and waits for the process to end. */
  close(): Promise<{ code: number | null; stderr: string; stdout: Buffer }>;
  readonly process: ChildProcessWithoutNullStreams;
  /** Every byte the server wrote to stdout. */
  readonly stdout: Buffer[];
  stderrText(): string;
  nextMsgid(): number;
}

export const OPEN_DEFAULTS: Record<string, EncodableValue> = {
  create: false,
  lock_wait: 1,
  lock: true,
  exclusive: true,
  append_only: false,
  make_parent_dirs: false,
};

export function startRpcClient(env: BorgkeepEnv, key: string, opts: { address?: string; command?: string } = {}): RpcClient {
  const child = spawn(process.execPath, [BORGKEEP, '--data-dir', env.dataDir, 'borg-serve', '--key', key], {
    env: {
      PATH: process.env.PATH,
      SSH_CONNECTION: `${opts.address ?? '127.0.0.1'} 40022 127.0.0.1 22`,
      SSH_ORIGINAL_COMMAND: opts.command ?? 'borg serve',
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const splitter = createFrameSplitter(CLIENT_LIMITS);
  const replies = new Map<number, Reply>();
  const waiters = new Map<number, (r: Reply) => void>();
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdin.on('error', () => {});
  child.stderr.on('data', (d: Buffer) => stderr.push(d));
  child.stdout.on('data', (d: Buffer) => {
    stdout.push(d);
    for (const frame of splitter.push(d)) {
      const v = decode(Buffer.from(frame));
      let r: Reply;
      if (v instanceof MsgMap) {
        const cls = v.get('exception_class');
        const short = v.get('exception_short');
        r = {
          msgid: v.get('i') as number,
          exceptionClass: Buffer.isBuffer(cls) ? cls.toString() : null,
          result: v.get('r') ?? null,
          message: Array.isArray(short) ? short.map((x) => (Buffer.isBuffer(x) ? x.toString() : String(x))).join('\n') : '',
          raw: v,
        };
      } else if (Array.isArray(v)) {
        r = {
          msgid: v[1] as number,
          exceptionClass: Buffer.isBuffer(v[2]) ? v[2].toString() : null,
          result: v[2] === null ? v[3] : null,
          message: Buffer.isBuffer(v[3]) ? v[3].toString() : '',
          raw: v,
        };
      } else continue;
      const w = waiters.get(r.msgid);
      if (w) {
        waiters.delete(r.msgid);
        w(r);
      } else replies.set(r.msgid, r);
    }
  });
  let msgid = 1;
  const client: RpcClient = {
    process: child,
    stdout,
    stderrText: () => Buffer.concat(stderr).toString(),
    nextMsgid: () => msgid,
    send(bytes) {
      child.stdin.write(bytes);
    },
    request(method, args = {}) {
      const id = msgid++;
      client.send(encode(MsgMap.of([['i', id], ['m', Buffer.from(method)], ['a', MsgMap.of(Object.entries(args) as unknown as Array<[string, MsgValue]>)]])));
      return id;
    },
    reply(id, timeoutMs = 20_000) {
      const have = replies.get(id);
      if (have) {
        replies.delete(id);
        return Promise.resolve(have);
      }
      return new Promise<Reply>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(id);
          reject(new Error(`no reply to msgid ${id} within ${timeoutMs} ms; stderr: ${client.stderrText()}`));
        }, timeoutMs);
        const onExit = () => {
          // let pending data events flush first
          setTimeout(() => {
            if (waiters.has(id)) {
              waiters.delete(id);
              clearTimeout(timer);
              reject(new Error(`server ended before replying to msgid ${id}; stderr: ${client.stderrText()}`));
            }
          }, 50);
        };
        child.once('close', onExit);
        waiters.set(id, (r) => {
          clearTimeout(timer);
          child.off('close', onExit);
          resolve(r);
        });
      });
    },
    call(method, args = {}, timeoutMs) {
      return client.reply(client.request(method, args), timeoutMs);
    },
    negotiate() {
      const id = msgid++;
      client.send(encode([1, id, 'negotiate', [MsgMap.of([['client_version', [1, 2, 4, -1]]])]]));
      return client.reply(id);
    },
    async open(path, opts = {}) {
      await client.negotiate();
      const r = await client.call('open', { path, ...OPEN_DEFAULTS, ...opts });
      if (r.exceptionClass) throw new Error(`open ${path} failed: ${r.exceptionClass}: ${r.message}`);
      return r;
    },
    async close() {
      child.stdin.end();
      if (child.exitCode === null && child.signalCode === null) await once(child, 'close');
      return { code: child.exitCode, stderr: client.stderrText(), stdout: Buffer.concat(stdout) };
    },
  };
  return client;
}
