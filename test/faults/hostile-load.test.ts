// Faults a client causes on purpose through the embedded gateway, speaking SSH and borg's RPC by
// hand (ssh2's client, frames from our encoder):
//  - back-pressure: it asks for large objects hundreds of times over and never reads a reply;
//    the gateway (RSS of the `borgkeep serve` process) must not buffer them;
//  - 100 MB of garbage after a valid start: refused at the first bad frame with one clear line,
//    the rest never read, and recorded in the ledger.
// Throughout, a real borg client on another repository keeps working through the same gateway.

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, type ClientChannel } from 'ssh2';
import { afterAll, beforeAll, expect, test } from 'vitest';

import { listSegments, readSegment } from '../../src/repository/segments.js';
import { MsgMap, encode } from '../../src/rpc/msgpack.js';
import { createBorgkeepEnv, makeSourceTree, type BorgkeepEnv } from '../helpers/borgkeep-env.js';
import { OPEN_DEFAULTS } from '../helpers/rpc-client.js';
import type { SshFrontEnd } from '../helpers/ssh-transports.js';
import { faultKit, randomTree, rssMb, sleep, twoRepositories } from './fault-kit.js';

const MB = 1024 * 1024;
let env: BorgkeepEnv;
let front: SshFrontEnd;
const kit = faultKit(() => env);

beforeAll(async () => {
  env = createBorgkeepEnv('fault-hostile-load', 'embedded');
  await twoRepositories(env, 'main', { admin: 'full', greedy: 'read', noisy: 'append' }, 'other');
  const big = await env.borg('admin', ['create', '--compression', 'none', `${env.url('main')}::big`, randomTree(join(env.root, 'big'), 24 * MB)]);
  expect(big.code, big.stderr).toBe(0);
  front = await env.frontEnd();
});
afterAll(() => env?.cleanup());

/** An SSH session running `borg serve` as key `name`, its output left unread. */
async function borgServeChannel(name: string): Promise<{ ssh: Client; channel: ClientChannel }> {
  const ssh = new Client();
  await new Promise<void>((resolve, reject) => {
    ssh.once('ready', () => resolve());
    ssh.once('error', reject);
    ssh.connect({ host: '127.0.0.1', port: front.port, username: 'borg', privateKey: readFileSync(join(env.root, 'ssh-keys', name)), readyTimeout: 15_000 });
  });
  const channel = await new Promise<ClientChannel>((resolve, reject) => ssh.exec('borg serve', (err, ch) => (err ? reject(err) : resolve(ch))));
  return { ssh, channel };
}

const request = (msgid: number, method: string, args: Array<[string, unknown]>): Buffer =>
  encode(MsgMap.of([['i', msgid], ['m', Buffer.from(method)], ['a', MsgMap.of(args as never)]]));
const negotiate = (): Buffer => encode([1, 1, 'negotiate', [MsgMap.of([['client_version', [1, 2, 4, -1]]])]]);
const open = (path: string): Buffer => request(2, 'open', [['path', Buffer.from(path)], ...(Object.entries(OPEN_DEFAULTS) as Array<[string, unknown]>)]);

/** A real borg client on the other repository, through the same gateway, at the same time. */
async function othersStillServed(tag: string): Promise<void> {
  const r = await env.borg('server', ['create', `${env.url('other')}::${tag}`, makeSourceTree(join(env.root, tag), 3, 2)]);
  expect(r.code, r.stderr).toBe(0);
}

test('a client that asks for large objects and never reads the replies: the gateway does not buffer them', async () => {
  // The largest objects of the repository, read from its segments behind the guard's back.
  const repo = await env.repoPath('main');
  const puts = [];
  for (const file of listSegments(repo)) {
    for (const e of (await readSegment(file, () => false)).entries) if (e.tag === 'put') puts.push(e);
  }
  const largest = puts.sort((a, b) => b.size - a.size).slice(0, 4);
  expect(largest[0]!.size).toBeGreaterThan(MB);
  const serve = front.process.pid!;
  const before = rssMb(serve);

  const { ssh, channel } = await borgServeChannel('greedy');
  channel.pause(); // never read: the replies pile up wherever something buffers them
  channel.write(negotiate());
  channel.write(open('/./main'));
  // 1,000 gets: about 1,000 × the largest objects' size (several GB) if nothing pushed back.
  const asked = largest.reduce((a, e) => a + e.size, 0) * 250;
  for (let i = 0; i < 1000; i++) channel.write(request(10 + i, 'get', [['id', largest[i % 4]!.id]]));
  expect(asked).toBeGreaterThan(1000 * MB);
  let peak = before;
  for (let t = 0; t < 16; t++) {
    await sleep(500);
    peak = Math.max(peak, rssMb(serve));
  }
  await othersStillServed('during-stall');
  peak = Math.max(peak, rssMb(serve));
  console.log(`FIGURES back-pressure: RSS before ${before} MB, peak ${peak} MB`);
  expect(peak - before, `RSS before ${before} MB, peak ${peak} MB`).toBeLessThan(100);
  const open1 = (await kit.ledger('main')).find((s) => s.keyName === 'greedy');
  expect(open1?.result).toBe('open');
  expect(open1!.bytesOut).toBeLessThan(200 * MB); // progress so far: what actually left, not what was asked

  // The client goes away without reading: the session ends, nothing is left running.
  ssh.end();
  const closed = await kit.closedSession(open1!.id);
  expect(closed).toMatchObject({ result: 'aborted', detail: 'the connection to the client was closed' });
  await kit.noneOpen();
});

test('100 MB of garbage after a valid start: refused at once with one clear line, memory bounded, in the ledger', async () => {
  const serve = front.process.pid!;
  const before = rssMb(serve);
  const { ssh, channel } = await borgServeChannel('noisy');
  let stderr = '';
  let code: number | null = null;
  channel.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  channel.on('exit', (c: number | null) => (code = c));
  channel.on('data', () => {}); // the negotiate reply
  const closed = new Promise<void>((resolve) => channel.on('close', () => resolve()));
  const t0 = Date.now();
  channel.write(negotiate());
  // 100 MB of random bytes in 1 MiB writes, as fast as the channel takes them.
  let sent = 0;
  let peak = before;
  const writer = (async () => {
    const chunk = randomBytes(MB);
    while (sent < 100 * MB && !channel.destroyed && code === null) {
      chunk[0] = sent === 0 ? 0xc1 : chunk[0]!; // 0xc1: a byte msgpack never uses
      sent += MB;
      if (!channel.write(chunk)) await Promise.race([new Promise((r) => channel.once('drain', r)), closed, sleep(1000)]);
      peak = Math.max(peak, rssMb(serve));
    }
  })();
  await closed;
  const elapsed = Date.now() - t0;
  await writer;
  ssh.end();
  peak = Math.max(peak, rssMb(serve));
  console.log(`FIGURES garbage: ${elapsed} ms, RSS before ${before} MB, peak ${peak} MB, sent ${sent / MB} MB`);
  expect(elapsed).toBeLessThan(5000);
  expect(code).toBe(1);
  expect(stderr.trim().split('\n')).toEqual(['borgkeep: session ended: the client sent a message borg does not allow: a message contains the reserved byte 0xc1.']);
  expect(peak - before, `RSS before ${before} MB, peak ${peak} MB`).toBeLessThan(100);

  const [session] = (await kit.ledger()).filter((s) => s.keyName === 'noisy');
  expect(session?.result).toBe('error');
  expect(session?.detail).toMatch(/^the client sent a message borg does not allow/);
  // Reading stopped at the bad frame: far less than the 100 MB came in.
  expect(session!.bytesIn).toBeLessThan(10 * MB);
  await othersStillServed('after-garbage');
  expect(await kit.onDisk('other')).toEqual(['after-garbage', 'during-stall']);
  await kit.noneOpen();
});
