// Rollback to a transaction that compaction removed from the disk: the manifest borgkeep kept
// of it (kept-manifests.ts) is written back as a new transaction, through a `borg serve` of the
// repository like any client's, so borg's own code writes the segment, the index and the hints.
// What the manifest points at is still there: a transaction the gate let compaction go over
// deleted nothing older than its own session (compaction-gate.ts), so the archives of the kept
// manifest are whole. Moving segments instead (rollback.ts) is wrong here: compaction copied
// older objects into segments after the transaction, and moving those would lose them.
//
// The envelope goes back byte for byte (its TAM is the key's; borgkeep needs no key for this).
// Its timestamp is older than the manifest it replaces: clients must forget the state they saw,
// as after any rollback.

import { MsgMap, type EncodableValue } from '../rpc/msgpack.js';
import { createFrameSplitter } from '../rpc/frame-splitter.js';
import { CLIENT_LIMITS } from '../rpc/msgpack.js';
import { encodeRequest, parseReply, type RpcReply } from '../rpc/messages.js';
import { MANIFEST_ID } from '../repository/manifest.js';
import type { SpawnBorg } from '../guard/borg-child.js';
import { BorgkeepError } from '../errors.js';
import type { KeptHistory, KeptTransaction } from './kept-manifests.js';

/** The kept transaction whose manifest was in effect after `toTxn`, or null when none is kept. */
export function keptManifestAt(kept: KeptHistory, toTxn: number): KeptTransaction | null {
  if (!kept.transactions.some((t) => t.id === toTxn)) return null;
  const withManifest = kept.transactions.filter((t) => t.id <= toTxn && t.manifestFile !== null);
  return withManifest.at(-1) ?? null;
}

/** Writes `envelope` as the repository's manifest in a new transaction. */
export async function restoreManifest(spawnBorg: SpawnBorg, repoPath: string, envelope: Buffer): Promise<void> {
  const child = spawnBorg({ repositoryPath: repoPath, appendOnly: true, storageQuota: null, logLevel: null });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => {
    if (stderr.length < 4000) stderr += c.toString('utf8');
  });
  const splitter = createFrameSplitter(CLIENT_LIMITS);
  const waiting = new Map<number, (r: RpcReply) => void>();
  const pump = (async () => {
    for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
      for (const frame of splitter.push(chunk)) {
        const reply = parseReply(frame);
        if (reply) waiting.get(reply.msgid)?.(reply);
      }
    }
  })();
  let msgid = 0;
  const call = async (method: string, args: Array<[string, EncodableValue]>): Promise<RpcReply> => {
    const id = ++msgid;
    const reply = new Promise<RpcReply>((resolve, reject) => {
      waiting.set(id, resolve);
      void child.exited.then(() => reject(new Error(`borg serve ended before answering ${method}${stderr ? `: ${stderr.trim().split('\n').at(-1)}` : ''}`)));
    });
    child.stdin.write(encodeRequest('dict', id, method, new Map(args)));
    const r = await reply;
    if (r.exceptionClass !== null) throw new BorgkeepError('BK_ERR_INVALID_INPUT', `borg refused to write the manifest back (${method}: ${r.exceptionClass})`);
    return r;
  };
  try {
    await call('negotiate', [['client_data', MsgMap.of([['client_version', [1, 2, 4, -1]]])]]);
    await call('open', [
      ['path', Buffer.from(repoPath, 'utf8')],
      ['create', false],
      ['lock_wait', 1],
      ['lock', true],
      ['exclusive', true],
      ['append_only', false],
      ['make_parent_dirs', false],
    ]);
    await call('put', [
      ['id', MANIFEST_ID],
      ['data', envelope],
      ['wait', true],
    ]);
    await call('commit', [
      ['save_space', false],
      ['compact', false],
      ['threshold', { float: 0.1 }],
      ['cleanup_commits', false],
    ]);
  } finally {
    child.stdin.end();
    await child.exited;
    await pump.catch(() => undefined);
  }
}
