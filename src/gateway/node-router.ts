// A gateway's part in sessions of repositories on storage nodes (issue 19). Which repository a
// session opens is only known from its `open` call, and a borg client sends that only after its
// negotiate was answered: the router answers the negotiate itself (as the guard does), reads the
// open, and decides where the session runs.
//
// - The repository is on no node: the session runs here, in the local
//   guard, from the first byte (the bytes read are put back on the channel; the guard is told the
//   client has its negotiate reply).
// - It is on another node: the router opens a channel to that node over SSH (node-connector.ts)
//   and passes the session's bytes through unchanged in both directions. The node's own guard
//   decides every call next to the repository (its lock, the index-based checks, the ledger), for
//   the key and client address the gateway authenticated; the gateway decides nothing more.
// - That node cannot be reached: the local guard answers the open with one sentence saying so,
//   and the refusal is in the ledger; other repositories are not affected.
//
// Only the key's own grants are looked at: a key without a grant on the repository never learns
// where it is, or that it exists (the local guard answers "does not exist").

import type { Duplex, Writable } from 'node:stream';

import type { DenyReason } from '../guard/grant-policy.js';
import { negotiateResult } from '../guard/guard.js';
import type { VersionTuple } from '../guard/borg-version.js';
import { repositoryNameFromPath } from '../guard/repository-path.js';
import type { LogLevel } from '../guard/borg-child.js';
import { createFrameSplitter } from '../rpc/frame-splitter.js';
import { createFrameTracker, type FrameTracker } from '../rpc/frame-tracker.js';
import { encodeExceptionReply, encodeResultReply, parseRequest, type RpcRequest } from '../rpc/messages.js';
import { SERVER_LIMITS, scanFrame } from '../rpc/msgpack.js';
import { nodeIsUp, type NodeStore, type StorageNode } from '../store/node-store.js';
import type { GuardStore } from '../store/types.js';

/** What the node's guard needs to run a forwarded session as the gateway would have. */
export interface ForwardedSession {
  /** The authenticated key's id. */
  readonly keyId: number;
  readonly clientAddress: string | null;
  readonly logLevel: LogLevel | null;
  readonly maxSessionsPerKey: number;
}

/** A channel to a node's forward command, as ssh2 gives it. */
export interface NodeChannel extends Duplex {
  readonly stderr: NodeJS.ReadableStream;
}

export interface NodeConnector {
  /** Opens a forwarded session on the node; rejects when the node cannot be reached. */
  open(node: StorageNode, session: ForwardedSession): Promise<NodeChannel>;
  close(): void;
}

export type Route =
  | { readonly kind: 'local'; readonly negotiated: boolean; readonly refusal?: { readonly reason: DenyReason; readonly why: string } }
  | { readonly kind: 'forwarded'; readonly exitCode: number };

export interface NodeRouterDeps {
  readonly store: Pick<GuardStore, 'findGrant'> & Pick<NodeStore, 'repositoryPlacement' | 'findNode'>;
  readonly borgVersion: () => VersionTuple | null;
  readonly connector: NodeConnector;
  readonly now?: () => Date;
  /** How long a client may take to send its negotiate and open. */
  readonly openTimeoutMs?: number;
  readonly log: { warn(fields: Record<string, unknown>, message: string): void; info(fields: Record<string, unknown>, message: string): void };
}

export interface ClientChannel extends Duplex {
  readonly stderr: Writable;
}

interface Opening {
  /** Every byte read from the client so far. */
  readonly bytes: Buffer;
  readonly negotiated: boolean;
  readonly open: RpcRequest | null;
}

const OPEN_TIMEOUT_MS = 60_000;

export function createNodeRouter(deps: NodeRouterDeps) {
  const now = deps.now ?? (() => new Date());

  /**
   * Reads frames until the open, answering the negotiate. Stops early at anything unexpected (a
   * bad frame, another first call, the end of input): the local guard then deals with it as it
   * would with any session. The channel is left paused.
   */
  const readOpening = (channel: ClientChannel, gone: AbortSignal): Promise<Opening> =>
    new Promise((resolve) => {
      let bytes: Buffer = Buffer.alloc(0);
      let offset = 0;
      let negotiated = false;
      let done = false;
      const finish = (open: RpcRequest | null): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        channel.off('data', onData);
        channel.off('end', onEnd);
        gone.removeEventListener('abort', onEnd);
        channel.pause();
        resolve({ bytes, negotiated, open });
      };
      const onEnd = (): void => finish(null);
      const timer = setTimeout(onEnd, deps.openTimeoutMs ?? OPEN_TIMEOUT_MS);
      const onData = (chunk: Buffer): void => {
        bytes = bytes.length === 0 ? chunk : Buffer.concat([bytes, chunk]);
        for (;;) {
          const scan = scanFrame(bytes, offset, SERVER_LIMITS);
          if (scan.kind === 'invalid') return finish(null);
          if (scan.kind === 'incomplete') return;
          const frame = bytes.subarray(offset, scan.end);
          offset = scan.end;
          let req: RpcRequest;
          try {
            req = parseRequest(frame);
          } catch {
            return finish(null);
          }
          if (!negotiated) {
            const version = deps.borgVersion();
            if (req.method !== 'negotiate' || !version) return finish(null);
            negotiated = true;
            channel.write(encodeResultReply(req.format, req.msgid, negotiateResult(req.args.get('client_data'), version)));
            continue;
          }
          return finish(req.method === 'open' ? req : null);
        }
      };
      channel.on('data', onData);
      channel.once('end', onEnd);
      gone.addEventListener('abort', onEnd, { once: true });
    });

  /** The node the session's repository is on, when the key has a grant on it and it is on one. */
  const nodeFor = async (keyId: number, open: RpcRequest): Promise<{ name: string; repository: string; movingTo: string | null } | null> => {
    const path = open.args.get('path');
    const name = Buffer.isBuffer(path) ? repositoryNameFromPath(path) : null;
    if (name === null) return null;
    const found = await deps.store.findGrant(keyId, name);
    if (!found) return null;
    const placement = await deps.store.repositoryPlacement(found.repository.id);
    if (!placement) return null;
    return { name: placement.node, repository: found.repository.name, movingTo: placement.movingTo };
  };

  return {
    async route(channel: ClientChannel, session: ForwardedSession, gone: AbortSignal, stop: AbortSignal): Promise<Route> {
      const opening = await readOpening(channel, gone);
      const local = (refusal?: { reason: DenyReason; why: string }): Route => {
        if (opening.bytes.length > 0) channel.unshift(opening.bytes);
        return { kind: 'local', negotiated: opening.negotiated, ...(refusal && { refusal }) };
      };
      if (!opening.open) return local();
      const target = await nodeFor(session.keyId, opening.open);
      if (!target) return local();
      const down = (why: string): Route => {
        deps.log.warn({ event: 'node-unreachable', node: target.name, repository: target.repository, why }, 'a storage node could not be reached');
        return local({ reason: 'BK_DENY_NODE_DOWN', why: `the repository is on storage node '${target.name}', which cannot be reached now (${why}); other repositories are not affected` });
      };
      if (target.movingTo !== null) {
        return local({ reason: 'BK_DENY_NODE_DOWN', why: `the repository is being moved to storage node '${target.movingTo}'; try again when the move has finished` });
      }
      const node = await deps.store.findNode(target.name);
      if (!node) return down('it is not registered');
      if (!nodeIsUp(node, now())) return down(node.stoppedAt ? 'it was stopped' : 'it has not reported for a while');
      let remote: NodeChannel;
      try {
        remote = await deps.connector.open(node, session);
      } catch (error) {
        return down((error as Error).message);
      }
      return { kind: 'forwarded', exitCode: await pass(channel, remote, opening.bytes, target.name, gone, stop) };
    },
  };
}

/** How long a client whose node went away may go on sending calls (each answered with why), and go quiet. */
const NODE_GONE_DRAIN_MS = 15_000;
const NODE_GONE_QUIET_MS = 2000;

/**
 * Passes bytes both ways until the node's session ends; its exit status. A node that goes away
 * without one (killed, its machine down, the network cut) leaves a client that is still sending
 * (a backup's pipelined puts): as the guard does when borg serve dies, its further calls are
 * answered with why for a moment, so that the borg client prints that instead of dying of a
 * broken pipe; then the reason goes to stderr and the session ends.
 */
function pass(client: ClientChannel, remote: NodeChannel, first: Buffer, node: string, gone: AbortSignal, stop: AbortSignal): Promise<number> {
  return new Promise((resolve) => {
    let exitCode: number | null = null;
    // Where the client's frames end, to answer its calls from a frame's start if the node goes away.
    const tracker = createFrameTracker();
    const follow = (chunk: Buffer): void => void tracker.feed(chunk);
    tracker.feed(first);
    remote.on('exit', (code: number | null) => {
      exitCode = typeof code === 'number' ? code : 1;
    });
    remote.on('error', () => undefined);
    client.on('error', () => undefined);
    remote.write(first);
    client.on('data', follow);
    client.pipe(remote);
    remote.pipe(client, { end: false });
    remote.stderr.pipe(client.stderr, { end: false });
    const hangUp = (): void => {
      remote.destroy();
    };
    gone.addEventListener('abort', hangUp, { once: true });
    // Shutting down: the node's guard gets the end of input, and borg rolls back what is not committed.
    stop.addEventListener('abort', () => remote.end(), { once: true });
    remote.once('close', () => {
      gone.removeEventListener('abort', hangUp);
      client.unpipe(remote);
      client.off('data', follow);
      if (exitCode !== null || gone.aborted) return resolve(exitCode ?? 1);
      const why = `storage node '${node}' went away during the session; what was not committed is not kept. Run the command again once the node is back.`;
      void answerWhileSending(client, tracker, why, gone).then(() => {
        client.stderr.write(`borgkeep: ${why}\n`);
        resolve(1);
      });
    });
  });
}

/** Answers the client's calls with `why` until it is quiet, ends its input, or the drain time is over. */
function answerWhileSending(client: ClientChannel, tracker: FrameTracker, why: string, gone: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const splitter = createFrameSplitter(SERVER_LIMITS);
    let aligned = tracker.atBoundary;
    const finish = (): void => {
      clearTimeout(quiet);
      clearTimeout(drain);
      client.off('data', onData);
      client.off('end', finish);
      gone.removeEventListener('abort', finish);
      resolve();
    };
    const quiet = setTimeout(finish, NODE_GONE_QUIET_MS);
    const drain = setTimeout(finish, NODE_GONE_DRAIN_MS);
    const onData = (data: Buffer): void => {
      quiet.refresh();
      let chunk = data;
      if (!aligned) {
        if (!tracker.valid) return;
        const end = tracker.feed(chunk, true);
        if (end < 0) return;
        aligned = true;
        chunk = chunk.subarray(end);
      }
      try {
        for (const frame of splitter.push(chunk)) {
          const req = parseRequest(frame);
          client.write(encodeExceptionReply(req.format, req.msgid, { exceptionClass: 'ConnectionClosed', message: why }));
        }
      } catch {
        finish(); // not borg's protocol: nothing more to answer
      }
    };
    client.on('data', onData);
    client.once('end', finish);
    gone.addEventListener('abort', finish, { once: true });
    client.resume();
  });
}
