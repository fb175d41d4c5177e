// The guard's memory while it reads a long client stream: what it has read and handled must be
// garbage by the next chunks, not kept until the session ends. A backup streams gigabytes through
// one session; a guard that keeps its input alive grows with it, and its garbage collector and
// fresh pages for every frame tripled its CPU (issue 13, finding 11).

import { EventEmitter } from 'node:events';
import { Readable, Writable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { expect, test } from 'vitest';

import { MsgMap, encode } from '../rpc/msgpack.js';
import type { GuardStore } from '../store/types.js';
import { runGuardSession } from './guard.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const CHUNKS = 400;
const PAD = 64 * 1024;

const request = (msgid: number, method: string, args: MsgMap): Buffer => encode(MsgMap.of([['i', msgid], ['m', Buffer.from(method)], ['a', args]]));

/** A store that knows nothing: the session stays unopened, every call after negotiate is refused. */
const store = {
  findKey: async () => undefined,
  startSession: async () => 1,
  updateSession: async () => undefined,
  endSession: async () => undefined,
  recordDenial: async () => 1,
  recordTransaction: async () => 1,
} as unknown as GuardStore;

test('chunks the guard has read are not kept alive for the rest of the session', async () => {
  const used: number[] = [];
  let i = 0;
  // One fresh 64 KiB frame per read, made on demand so only the guard can hold on to it.
  const input = new Readable({
    highWaterMark: 1,
    read() {
      const next = (): void => {
        if (i === 0) this.push(request(1, 'negotiate', MsgMap.of([['client_data', MsgMap.of([['client_version', [1, 2, 4]]])]])));
        else if (i <= CHUNKS) this.push(request(i + 1, 'get', MsgMap.of([['id', Buffer.alloc(32)], ['pad', Buffer.alloc(PAD, i & 0xff)]])));
        else this.push(null);
        i++;
      };
      if (i !== 50 && i !== CHUNKS) return next();
      // V8 releases the memory of collected buffers on a thread of its own, a moment after the
      // collection: measure after a pause and a second collection, or freed chunks still count.
      gc();
      setTimeout(() => {
        gc();
        used[i] = process.memoryUsage().arrayBuffers;
        next();
      }, 50);
    },
  });
  const sink = () =>
    new Writable({
      write(_chunk, _enc, done) {
        done();
      },
    });
  const outcome = await runGuardSession(
    { store, reposDir: '/nonexistent', spawnBorg: () => { throw new Error('no child in this test'); }, borgVersion: () => [1, 2, 4, -1], host: 'test', pid: 1 },
    { keyRef: 'laptop', clientAddress: null, logLevel: null, input, output: sink(), errOutput: sink() },
  );
  expect(outcome.result).toBe('denied'); // every get refused: no repository is open
  // 350 chunks of 64 KiB (22 MiB) were read between the two measures; kept, they would all be there.
  expect(used[CHUNKS] - used[50]).toBeLessThan(4 * 1024 * 1024);
});

test('sessions that share one connection leave no listener on it when they end (a gateway carries many to a storage node)', async () => {
  const gone = new AbortController();
  const sink = () =>
    new Writable({
      write(_chunk, _enc, done) {
        done();
      },
    });
  for (let n = 0; n < 20; n++) {
    const input = Readable.from([request(1, 'negotiate', MsgMap.of([['client_data', MsgMap.of([['client_version', [1, 2, 4]]])]]))]);
    await runGuardSession(
      { store, reposDir: '/nonexistent', spawnBorg: () => { throw new Error('no child in this test'); }, borgVersion: () => [1, 2, 4, -1], host: 'test', pid: 1 },
      { keyRef: 'laptop', clientAddress: null, logLevel: null, input, output: sink(), errOutput: sink(), gone: gone.signal },
    );
  }
  expect(EventEmitter.getEventListeners(gone.signal, 'abort')).toHaveLength(0);
});
