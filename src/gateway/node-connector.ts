// The SSH connections of one process to storage nodes (node-router.ts): one connection per node,
// carrying every session forwarded there as its own channel. The process logs in with its fleet
// key (DATA/ssh/fleet_ed25519, registered in the database) and accepts no host key but the one
// the node registered. A connection that fails or closes is dropped, and the next session opens
// a new one.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { Client, ClientChannel, ConnectConfig } from 'ssh2';

import { LOG_LEVELS } from '../guard/borg-child.js';
import { generateEd25519KeyPair, writeKeyPair } from './host-keys.js';
import type { ForwardedSession, NodeChannel, NodeConnector } from './node-router.js';
import type { StorageNode } from '../store/node-store.js';

/** The user name gateways log in to nodes as. */
export const NODE_USER = 'borgkeep-node';
/** The exec request of a forwarded session: this word, then the session as base64url JSON. */
export const FORWARD_COMMAND = 'borgkeep-forward';
const CONNECT_TIMEOUT_MS = 5000;

export interface FleetKey {
  readonly privateKey: string;
  /** "ssh-ed25519 AAAA...", as registered. */
  readonly publicKey: string;
}

/** This installation's key for logging in to nodes, made on first use (mode 0600). */
export function loadOrCreateFleetKey(dataDir: string): FleetKey {
  const path = join(dataDir, 'ssh', 'fleet_ed25519');
  if (!existsSync(path)) writeKeyPair(path, generateEd25519KeyPair(), 'borgkeep fleet key');
  const [type, blob] = readFileSync(`${path}.pub`, 'utf8').trim().split(/\s+/);
  return { privateKey: readFileSync(path, 'utf8'), publicKey: `${type} ${blob}` };
}

export function encodeForward(session: ForwardedSession): string {
  return `${FORWARD_COMMAND} ${Buffer.from(JSON.stringify(session)).toString('base64url')}`;
}

/** The session of a forward request, or null when it is not one (checked field by field). */
export function decodeForward(command: string): ForwardedSession | null {
  const [word, payload, ...rest] = command.trim().split(' ');
  if (word !== FORWARD_COMMAND || !payload || rest.length > 0) return null;
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  if (!Number.isSafeInteger(o.keyId) || (o.keyId as number) <= 0) return null;
  if (!(o.clientAddress === null || (typeof o.clientAddress === 'string' && o.clientAddress.length <= 100))) return null;
  if (!(o.logLevel === null || (typeof o.logLevel === 'string' && (LOG_LEVELS as readonly string[]).includes(o.logLevel)))) return null;
  if (!Number.isSafeInteger(o.maxSessionsPerKey) || (o.maxSessionsPerKey as number) < 1) return null;
  return { keyId: o.keyId as number, clientAddress: o.clientAddress as string | null, logLevel: o.logLevel as ForwardedSession['logLevel'], maxSessionsPerKey: o.maxSessionsPerKey as number };
}

/** Why a node could not be reached, in words that name no address. */
function unreachable(error: Error & { level?: string; code?: string }): string {
  if (error.level === 'client-timeout' || error.code === 'ETIMEDOUT') return 'no answer within 5 seconds';
  if (error.code === 'ECONNREFUSED') return 'it refuses connections';
  if (error.code === 'EHOSTUNREACH' || error.code === 'ENETUNREACH' || error.code === 'ENOTFOUND') return 'its address cannot be reached';
  if (error.level === 'client-authentication') return 'it did not accept this gateway\'s fleet key';
  if (/host key|verification/i.test(error.message)) return 'its host key is not the one it registered';
  return 'the connection failed';
}

interface Connection {
  readonly client: Client;
  readonly ready: Promise<Client>;
  readonly address: string;
  readonly hostKey: string;
}

export function createNodeConnector(deps: {
  readonly Client: typeof Client;
  readonly key: FleetKey;
  readonly ciphers?: readonly string[];
}): NodeConnector & { execOn(node: StorageNode, command: string): Promise<ClientChannel> } {
  const pool = new Map<string, Connection>();

  const connect = (node: StorageNode): Connection => {
    const have = pool.get(node.name);
    if (have && have.address === node.address && have.hostKey === node.hostKey) return have;
    have?.client.end();
    const client = new deps.Client();
    const [type, blob] = node.hostKey.split(' ');
    const expected = Buffer.from(blob ?? '', 'base64');
    const colon = node.address.lastIndexOf(':');
    const host = node.address.slice(0, colon).replace(/^\[|\]$/g, '');
    const port = Number(node.address.slice(colon + 1));
    const ready = new Promise<Client>((resolve, reject) => {
      client.once('ready', () => resolve(client));
      client.once('error', (error: Error & { level?: string; code?: string }) => reject(new Error(unreachable(error))));
      client.once('close', () => reject(new Error('the connection closed')));
    });
    ready.catch(() => undefined);
    const config: ConnectConfig = {
      host,
      port,
      username: NODE_USER,
      privateKey: deps.key.privateKey,
      readyTimeout: CONNECT_TIMEOUT_MS,
      keepaliveInterval: 5000,
      keepaliveCountMax: 3,
      hostVerifier: (key: Buffer) => key.equals(expected),
      algorithms: {
        serverHostKey: [type as 'ssh-ed25519'],
        ...(deps.ciphers && { cipher: [...deps.ciphers] as NonNullable<NonNullable<ConnectConfig['algorithms']>['cipher']> }),
      },
    };
    const entry: Connection = { client, ready, address: node.address, hostKey: node.hostKey };
    const drop = (): void => {
      if (pool.get(node.name) === entry) pool.delete(node.name);
    };
    client.on('close', drop);
    client.on('error', drop);
    pool.set(node.name, entry);
    client.connect(config);
    return entry;
  };

  const execOn = async (node: StorageNode, command: string): Promise<ClientChannel> => {
    const client = await connect(node).ready;
    return new Promise((resolve, reject) => {
      client.exec(command, (error, channel) => (error ? reject(error) : resolve(channel)));
    });
  };

  return {
    open: (node, session) => execOn(node, encodeForward(session)) as Promise<NodeChannel>,
    execOn,
    close() {
      for (const c of pool.values()) c.client.end();
      pool.clear();
    },
  };
}
