// The fuzz target `objcheck`: the native object checker (native/objcheck.c) against the
// JavaScript it stands in for, on hostile objects a client holding the key could send. Each input
// is a plaintext (random, text-like or repetitive), compressed into an lz4 block by a small
// compressor of this file or left uncompressed, then damaged (bytes changed, cut, extended, the
// compression header changed) and sealed with a valid MAC, or damaged after sealing. The
// properties: both verifiers give the same verdict (the same sentence), the native lz4 decoder
// gives the JavaScript one's answer and bytes for an output of any size, and nothing throws.

import { createHash } from 'node:crypto';

import { createObjectVerifier, type ObjectVerifier } from '../../src/archive/verify-object.js';
import { objcheck, type Objcheck } from '../../src/native/objcheck.js';
import { isBlake2, type BorgKey, type KeyMode } from '../../src/repository/borg-key.js';
import { Lz4Error, Lz4OutputFull, lz4DecompressInto } from '../../src/repository/lz4.js';
import { createPrng, type Prng } from '../support/prng.js';
import { plainId, sealEnvelope } from '../support/sealed-objects.js';
import type { Violation } from './guard-target.js';

const MODES: readonly KeyMode[] = ['repokey', 'repokey-blake2', 'authenticated', 'authenticated-blake2', 'none'];

export interface ObjcheckInput {
  readonly mode: KeyMode;
  /** The plaintext whose id the put names. */
  readonly plain: Buffer;
  /** The payload as sealed: a compression header and a (possibly damaged) block. */
  readonly payload: Buffer;
  /** Changes to the envelope after sealing: [offset, byte]. */
  readonly after: ReadonlyArray<readonly [number, number]>;
  readonly counter: number;
  /** The output size the raw lz4 decoders are also given. */
  readonly outputSize: number;
}

/** A fixed key per mode, so that a finding replays. */
function keyOf(mode: KeyMode): BorgKey {
  const part = (name: string, n: number): Buffer => {
    const out = Buffer.alloc(n);
    for (let i = 0; i * 32 < n; i++) createHash('sha256').update(`objcheck fuzz ${mode} ${name} ${i}`).digest().copy(out, i * 32);
    return out;
  };
  return { repositoryId: part('id', 32), encKey: part('enc', 32), encHmacKey: part('mac', 32), idKey: part('idkey', isBlake2(mode) ? 128 : 32), tamRequired: true };
}

// --- a small lz4 compressor (greedy, one hash table), valid blocks with matches of every kind ---

function lz4Compress(src: Buffer, prng: Prng): Buffer {
  const out: number[] = [];
  const table = new Map<number, number>();
  const n = src.length;
  const lastLiterals = 5;
  const matchLimit = n - 12; // LZ4: the last match starts at least 12 bytes before the end
  let anchor = 0;
  const length = (v: number): void => {
    for (; v >= 255; v -= 255) out.push(255);
    out.push(v);
  };
  for (let i = 0; i < matchLimit; ) {
    const key = src.readUInt32LE(i);
    const cand = table.get(key);
    table.set(key, i);
    // Sometimes pass a match by, so literal runs of every length occur.
    if (cand === undefined || i - cand > 65_535 || prng.next() < 0.05) {
      i++;
      continue;
    }
    let m = 4;
    while (i + m < n - lastLiterals && src[cand + m] === src[i + m]) m++;
    const lit = i - anchor;
    out.push((Math.min(lit, 15) << 4) | Math.min(m - 4, 15));
    if (lit >= 15) length(lit - 15);
    for (let k = anchor; k < i; k++) out.push(src[k]);
    out.push((i - cand) & 0xff, (i - cand) >> 8);
    if (m - 4 >= 15) length(m - 4 - 15);
    i += m;
    anchor = i;
  }
  const lit = n - anchor;
  out.push(Math.min(lit, 15) << 4);
  if (lit >= 15) length(lit - 15);
  for (let k = anchor; k < n; k++) out.push(src[k]);
  return Buffer.from(out);
}

function plaintext(prng: Prng): Buffer {
  const size = prng.pick([prng.int(64), prng.int(2000), prng.int(20_000), prng.int(70_000), prng.int(300_000)]);
  switch (prng.int(3)) {
    case 0:
      return prng.bytes(size);
    case 1: {
      const words = ['borg', 'keep', ' ', '\n', 'archive', 'a', 'chunk', '0000', 'segment', 'xyz', '/usr/share/'];
      const parts: string[] = [];
      for (let n = 0; n < size; ) {
        const w = prng.pick(words);
        parts.push(w);
        n += w.length;
      }
      return Buffer.from(parts.join(''));
    }
    default: {
      const period = prng.range(1, 40);
      const unit = prng.bytes(period);
      return Buffer.from(Array.from({ length: size }, (_, i) => unit[i % period]));
    }
  }
}

function damage(prng: Prng, block: Buffer): Buffer {
  let b = Buffer.from(block);
  for (let k = prng.int(4); k > 0 && b.length > 0; k--) {
    switch (prng.int(5)) {
      case 0:
        b = b.subarray(0, prng.int(b.length + 1));
        break;
      case 1:
        b = Buffer.concat([b, prng.bytes(prng.range(1, 20))]);
        break;
      default: {
        const at = prng.next() < 0.5 ? b.length - 1 - prng.int(Math.min(24, b.length)) : prng.int(b.length);
        b[at] = prng.pick([0, 0xff, 0x0f, 0xf0, prng.int(256)]);
      }
    }
  }
  return b;
}

export function generateObjcheckInput(seed: number): ObjcheckInput {
  const prng = createPrng(seed);
  const mode = prng.pick(MODES);
  const plain = plaintext(prng);
  const lz4 = prng.next() < 0.75;
  let block = lz4 ? lz4Compress(plain, prng) : plain;
  if (prng.next() < 0.7) block = damage(prng, block);
  const header = prng.next() < 0.03 ? Buffer.from([prng.int(4), prng.int(2)]) : Buffer.from(lz4 ? [1, 0] : [0, 0]);
  const payload = Buffer.concat([header, block]);
  const after: Array<[number, number]> = [];
  if (prng.next() < 0.1) for (let k = prng.range(1, 3); k > 0; k--) after.push([prng.int(payload.length + 41), prng.int(256)]);
  return { mode, plain, payload, after, counter: prng.int(2 ** 30), outputSize: prng.pick([plain.length, plain.length + 8, Math.max(0, plain.length - prng.int(64)), prng.int(100_000)]) };
}

export function objcheckInputToJson(input: ObjcheckInput): object {
  return { ...input, plain: input.plain.toString('base64'), payload: input.payload.toString('base64') };
}

export function objcheckInputFromJson(j: Record<string, unknown>): ObjcheckInput {
  return { ...(j as unknown as ObjcheckInput), plain: Buffer.from(j.plain as string, 'base64'), payload: Buffer.from(j.payload as string, 'base64') };
}

// --- one input -----------------------------------------------------------------------------------

function jsLz4(src: Buffer, size: number): string {
  const dst = Buffer.alloc(size);
  try {
    const n = lz4DecompressInto(src, dst);
    return `${n}:${createHash('sha256').update(dst.subarray(0, n)).digest('hex')}`;
  } catch (error) {
    if (error instanceof Lz4OutputFull) return '-2';
    if (error instanceof Lz4Error) return '-1';
    throw error;
  }
}

function nativeLz4(native: Objcheck, src: Buffer, size: number): string {
  const dst = Buffer.alloc(size);
  const n = native.lz4(src, dst);
  return n >= 0 ? `${n}:${createHash('sha256').update(dst.subarray(0, n)).digest('hex')}` : String(n);
}

export interface ObjcheckHarness {
  readonly native: Objcheck;
  readonly verifiers: Map<KeyMode, { key: BorgKey; native: ObjectVerifier; js: ObjectVerifier }>;
}

export async function createObjcheckHarness(): Promise<ObjcheckHarness> {
  const native = objcheck();
  if (!native) throw new Error('the native object checker is not built (npm run build; it needs a C compiler)');
  const verifiers = new Map<KeyMode, { key: BorgKey; native: ObjectVerifier; js: ObjectVerifier }>();
  for (const mode of MODES) {
    const key = keyOf(mode);
    const k = mode === 'none' ? null : key;
    verifiers.set(mode, { key, native: await createObjectVerifier(mode, k), js: await createObjectVerifier(mode, k, { useNative: false }) });
  }
  return { native, verifiers };
}

export async function runObjcheckInput(input: ObjcheckInput, h: ObjcheckHarness): Promise<{ violations: Violation[]; outcome: string }> {
  const violations: Violation[] = [];
  const v = h.verifiers.get(input.mode);
  if (!v) throw new Error(`no verifier for ${input.mode}`);
  const envelope = await sealEnvelope(input.mode, v.key, input.payload, input.counter);
  for (const [at, byte] of input.after) if (at < envelope.length) envelope[at] = byte;
  const id = await plainId(input.mode, v.key, input.plain);
  let outcome = 'none';
  try {
    const mine = await v.native.verify(id, envelope);
    const theirs = await v.js.verify(id, envelope);
    outcome = mine === null ? 'accepted' : mine.kind;
    if (JSON.stringify(mine) !== JSON.stringify(theirs)) {
      violations.push({ property: 'same-verdict', message: `native ${JSON.stringify(mine)}, JavaScript ${JSON.stringify(theirs)}` });
    }
  } catch (error) {
    violations.push({ property: 'no-throw', message: `verify threw: ${(error as Error).message}` });
  }
  const block = input.payload.subarray(2);
  try {
    const a = nativeLz4(h.native, block, input.outputSize);
    const b = jsLz4(block, input.outputSize);
    if (a !== b) violations.push({ property: 'same-lz4', message: `native ${a}, JavaScript ${b} (output of ${input.outputSize} bytes)` });
  } catch (error) {
    violations.push({ property: 'no-throw', message: `lz4 threw: ${(error as Error).message}` });
  }
  return { violations, outcome };
}
