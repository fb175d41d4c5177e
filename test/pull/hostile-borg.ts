// The program of a hostile client host's fake `borg` (bundled by pull-failures.test.ts with
// esbuild and put first in the client user's PATH): instead of backing up, it takes the job's
// BORG_RSH, BORG_PASSCOMMAND and repository URL from its own command line and environment, as a
// taken-over client could, and speaks borg RPC to the job endpoint itself. argv[2] is the attack:
//   get       asks for an object of the repository (not the manifest)
//   forged    puts an object whose id does not match its content
//   other     puts an honest object, then a manifest naming another archive than the job's
// It prints each reply on stderr and exits 2. Test code only: never imported by src/.

import { spawn, execSync } from 'node:child_process';

import { createFrameSplitter } from '../../src/rpc/frame-splitter.js';
import { CLIENT_LIMITS, MsgMap, decode, encode, type MsgValue } from '../../src/rpc/msgpack.js';
import { manifestTamKey, unlockJobKey } from '../../src/pull/job-key.js';
import { packAuthenticated } from '../../src/pull/pull-proxy.js';
import { objectId, sealObject, type BorgKey } from '../../src/repository/borg-key.js';

const mode = process.argv[2];
const url = process.argv.find((a) => a.startsWith('ssh://'))!;
const m = /^ssh:\/\/([^@]+)@([^:]+):(\d+)(\/[^:]*)::(.*)$/.exec(url)!;
const [, user, hostName, port, path] = m;
const rsh = process.env.BORG_RSH!.split(' ').filter(Boolean);
const passphrase = execSync(process.env.BORG_PASSCOMMAND!, { shell: '/bin/sh' }).toString().replace(/\n$/, '');

const child = spawn(rsh[0]!, [...rsh.slice(1), '-p', port!, `${user}@${hostName}`, 'borg', 'serve'], { stdio: ['pipe', 'pipe', 'inherit'] });
const splitter = createFrameSplitter(CLIENT_LIMITS);
const replies = new Map<number, MsgValue>();
const waiters = new Map<number, (v: MsgValue) => void>();
child.stdout.on('data', (d: Buffer) => {
  for (const frame of splitter.push(d)) {
    const v = decode(Buffer.from(frame));
    const id = v instanceof MsgMap ? (v.get('i') as number) : Array.isArray(v) ? (v[1] as number) : -1;
    const w = waiters.get(id);
    if (w) w(v);
    else replies.set(id, v);
  }
});
let msgid = 1;
const reply = (id: number): Promise<MsgValue> =>
  new Promise((resolve) => (replies.has(id) ? resolve(replies.get(id)!) : waiters.set(id, resolve)));
async function call(method: string, args: Array<[string, MsgValue]> = []): Promise<{ error: string | null; message: string; result: MsgValue }> {
  const id = msgid++;
  child.stdin.write(encode(MsgMap.of([['i', id], ['m', Buffer.from(method)], ['a', MsgMap.of(args)]])));
  const v = (await reply(id)) as MsgMap;
  const cls = v.get('exception_class');
  const short = v.get('exception_short');
  const r = { error: Buffer.isBuffer(cls) ? cls.toString() : null, message: Array.isArray(short) ? short.map(String).join(' ') : '', result: v.get('r') ?? null };
  process.stderr.write(`hostile ${method}: ${r.error ?? 'ok'} ${r.message}\n`);
  return r;
}

async function object(key: BorgKey, plain: Buffer, iv: bigint): Promise<{ id: Buffer; data: Buffer }> {
  return { id: await objectId('repokey', key, plain), data: await sealObject(Buffer.concat([Buffer.from([0, 0]), plain]), 'repokey', key, iv) };
}

async function main(): Promise<void> {
  const nid = msgid++;
  child.stdin.write(encode([1, nid, 'negotiate', [MsgMap.of([['client_version', [1, 2, 4, -1]]])]]));
  await reply(nid);
  const o = await call('open', [['path', Buffer.from(path!)], ['create', false], ['lock_wait', 1], ['lock', true], ['exclusive', true], ['append_only', false], ['make_parent_dirs', false]]);
  const blob = (await call('load_key')).result as Buffer;
  const key = unlockJobKey(blob.toString('latin1'), passphrase, o.result as Buffer);
  if (mode === 'get') {
    // Any object id but the manifest's: the proxy must refuse without looking it up.
    await call('get', [['id', Buffer.alloc(32, 7)]]);
  } else if (mode === 'forged') {
    const claimed = await object(key, Buffer.from('what the id claims'), 2000n);
    const other = await object(key, Buffer.from('something else'), 3000n);
    await call('put', [['id', claimed.id], ['data', other.data], ['wait', true]]);
  } else {
    const honest = await object(key, Buffer.from('an honest chunk'), 1000n);
    await call('put', [['id', honest.id], ['data', honest.data], ['wait', true]]);
    const plain = packAuthenticated(
      [
        ['version', 1],
        ['archives', MsgMap.of([['not-the-job-archive', MsgMap.of([['id', honest.id], ['time', Buffer.from('2026-12-06T10:00:00.000000')]])]])],
        ['timestamp', Buffer.from(new Date().toISOString().replace('Z', '000'))],
        ['config', MsgMap.of([['tam_required', true]])],
        ['item_keys', []],
      ],
      (salt) => manifestTamKey(key, salt),
    );
    const manifest = await sealObject(Buffer.concat([Buffer.from([0, 0]), plain]), 'repokey', key, 4000n);
    await call('put', [['id', Buffer.alloc(32)], ['data', manifest], ['wait', true]]);
  }
  await call('commit', [['save_space', false], ['compact', false], ['threshold', 0.1], ['cleanup_commits', false]]);
  child.stdin.end();
  await new Promise((r) => child.once('exit', r));
  process.exit(2);
}

main().catch((error: unknown) => {
  process.stderr.write(`hostile: ${String(error)}\n`);
  process.exit(3);
});
