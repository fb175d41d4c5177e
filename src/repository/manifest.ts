// borg's manifest (fact sheet C.7, C.8): the decrypted msgpack map under the all-zero id, read
// with borg's own manifest limits, and its TAM (HKDF-HMAC-SHA512 key, HMAC-SHA512 over the
// plaintext with the hmac field zeroed). What an archive list is at one point of history.

import { createHmac, timingSafeEqual } from 'node:crypto';

import { MsgMap, decode, mapAt, scanFrame, skipValues, strAt, type MsgValue, type UnpackLimits } from '../rpc/msgpack.js';
import type { BorgKey } from './borg-key.js';

export class ManifestError extends Error {}

/** The manifest's object id: 32 zero bytes. */
export const MANIFEST_ID = Buffer.alloc(32);

/** get_limited_unpacker('manifest'). */
const MANIFEST_LIMITS: UnpackLimits = { maxArrayLen: 100, maxMapLen: 400_000, maxStrLen: 255, maxFrameSize: 60 * 1024 * 1024, maxDepth: 8 };

export interface ManifestArchive {
  /** The name as borg shows it (surrogate-escaped bytes shown as U+FFFD). */
  readonly name: string;
  /** Archive metadata object id, hex. */
  readonly id: string;
  readonly time: string;
}

export interface Manifest {
  readonly version: number;
  readonly timestamp: string;
  /**
   * The archive list as it is on the wire: the bytes of the archives map's entries (name, entry,
   * ...), without the map header. Consecutive manifests share nearly all of it, so a diff compares
   * bytes and decodes only what changed (archive-list.ts).
   */
  readonly archivesBody: Buffer;
  readonly archiveCount: number;
  /** 'ok', 'missing' (no TAM), 'invalid', or 'unchecked' (no key to check it with). */
  readonly tam: 'ok' | 'missing' | 'invalid' | 'unchecked';
  /** The `config` value's msgpack bytes as written (borg keeps its feature flags there), or null when absent. */
  readonly config: Buffer | null;
  /**
   * The mandatory feature flags of `config.feature_flags`, as "operation:feature" sorted: borg
   * refuses every operation that names a feature it does not know.
   */
  readonly mandatoryFeatures: string[];
  /** `item_keys` sorted, or null when absent. */
  readonly itemKeys: string[] | null;
}

/** The entries of an archives map body ([raw name, raw entry], latin1), in wire order. */
export function* archiveEntries(body: Buffer): Generator<[rawName: string, rawEntry: string]> {
  let pos = 0;
  while (pos < body.length) {
    const name = strAt(body, pos);
    if (!name) throw new ManifestError('the manifest has a malformed archive entry');
    const end = skipValues(body, name[1]);
    yield [body.toString('latin1', name[0], name[1]), body.toString('latin1', name[1], end)];
    pos = end;
  }
}

/** One archive entry decoded; a ManifestError when it is not one borg wrote. */
export function archiveFromEntry(rawName: string, rawEntry: string): ManifestArchive {
  const v = decode(Buffer.from(rawEntry, 'latin1'));
  const id = v instanceof MsgMap ? v.get('id') : undefined;
  if (!Buffer.isBuffer(id) || id.length !== 32) throw new ManifestError('the manifest has a malformed archive entry');
  return { name: Buffer.from(rawName, 'latin1').toString('utf8'), id: id.toString('hex'), time: text(v instanceof MsgMap ? v.get('time') : undefined) ?? '' };
}

const text = (v: MsgValue | undefined): string | null => (Buffer.isBuffer(v) ? v.toString('utf8') : null);

function hkdfSha512(ikm: Buffer, salt: Buffer, info: Buffer): Buffer {
  // L = 64 = HashLen: one block (RFC 5869).
  const prk = createHmac('sha512', salt).update(ikm).digest();
  return createHmac('sha512', prk).update(Buffer.concat([info, Buffer.from([1])])).digest();
}

/** borg's TAM key (crypto/key.py _tam_key, C.8): HKDF-SHA512 of id_key | enc_key | enc_hmac_key with the TAM's salt, per context. */
export function metadataTamKey(key: BorgKey, salt: Buffer, context: 'manifest' | 'archive'): Buffer {
  return hkdfSha512(Buffer.concat([key.idKey, key.encKey, key.encHmacKey]), salt, Buffer.from(`borg-metadata-authentication-${context}`));
}

function tamKey(key: BorgKey | null, salt: Buffer): Buffer {
  if (!key) return Buffer.concat([salt, Buffer.from('manifest')]);
  return metadataTamKey(key, salt, 'manifest');
}

/**
 * Decodes a manifest plaintext, all but the archive entries (see Manifest.archivesBody). `key`
 * is the unlocked key (null for mode none); pass `checkTam: false` when there is no key to check with.
 */
export function parseManifest(plain: Buffer, key: BorgKey | null, checkTam: boolean): Manifest {
  if (plain.length >= 4 && plain.readUInt32BE(0) === 0xc1c1c1c1) throw new ManifestError('the manifest was written by a newer borg');
  const r = scanFrame(plain, 0, MANIFEST_LIMITS);
  if (r.kind !== 'complete' || r.end !== plain.length) throw new ManifestError("the manifest is not valid msgpack within borg's limits");
  const top = mapAt(plain, 0);
  if (!top) throw new ManifestError('the manifest is not a map');
  const fields = new Map<string, MsgValue>();
  let archives: { body: Buffer; count: number } | null = null;
  let config: Buffer | null = null;
  let pos = top[1];
  for (let i = 0; i < top[0]; i++) {
    const keyEnd = skipValues(plain, pos);
    const k = strAt(plain, pos);
    const name = k ? plain.toString('latin1', k[0], k[1]) : null;
    const valueEnd = skipValues(plain, keyEnd);
    if (name === 'archives') {
      const map = mapAt(plain, keyEnd);
      if (!map) throw new ManifestError('the manifest has no archive list');
      archives = { body: plain.subarray(map[1], valueEnd), count: map[0] };
    } else if (name !== null) {
      if (name === 'config') config = plain.subarray(keyEnd, valueEnd);
      fields.set(name, decode(plain, keyEnd, valueEnd));
    }
    pos = valueEnd;
  }
  const version = fields.get('version');
  if (version !== 1 && version !== 2) throw new ManifestError('the manifest has an unknown version');
  const timestamp = text(fields.get('timestamp'));
  if (timestamp === null) throw new ManifestError('the manifest has no timestamp');
  if (!archives) throw new ManifestError('the manifest has no archive list');
  let tam: Manifest['tam'] = 'missing';
  const t = fields.get('tam');
  if (t instanceof MsgMap) {
    const hmac = t.get('hmac');
    const salt = t.get('salt');
    if (!Buffer.isBuffer(hmac) || hmac.length !== 64 || !Buffer.isBuffer(salt)) tam = 'invalid';
    else if (!checkTam) tam = 'unchecked';
    else {
      const at = plain.indexOf(hmac);
      const zeroed = Buffer.from(plain);
      zeroed.fill(0, at, at + 64);
      const expected = createHmac('sha512', tamKey(key, salt)).update(zeroed).digest();
      tam = timingSafeEqual(expected, hmac) ? 'ok' : 'invalid';
    }
  }
  return {
    version,
    timestamp,
    archivesBody: archives.body,
    archiveCount: archives.count,
    tam,
    config,
    mandatoryFeatures: mandatoryFeatures(fields.get('config')),
    itemKeys: itemKeys(fields.get('item_keys')),
  };
}

const latin1 = (v: MsgValue): string => (Buffer.isBuffer(v) ? v.toString('latin1') : String(v));

/** Manifest.get_all_mandatory_features: config[feature_flags][operation][mandatory]; anything else shaped is kept as it is written. */
function mandatoryFeatures(config: MsgValue | undefined): string[] {
  const flags = config instanceof MsgMap ? config.get('feature_flags') : undefined;
  if (!(flags instanceof MsgMap)) return [];
  const out: string[] = [];
  for (const [operation, requirements] of flags.entries) {
    const mandatory = requirements instanceof MsgMap ? requirements.get('mandatory') : undefined;
    if (Array.isArray(mandatory)) for (const f of mandatory) out.push(`${latin1(operation)}:${latin1(f)}`);
    else if (mandatory !== undefined) out.push(`${latin1(operation)}:?`);
  }
  return out.sort();
}

function itemKeys(v: MsgValue | undefined): string[] | null {
  if (!Array.isArray(v)) return null;
  return v.map(latin1).sort();
}
