// What a client needs to reach this server over SSH (the console's copy-paste instructions):
// the SSH user, port and host clients are told to use (serve's --public-host, else the gateway's
// address), the host keys' public lines and fingerprints, and a grant's whole client set-up
// (src/gateway/client-setup.ts: the same text `borgkeep repo setup` prints). Known only to
// `borgkeep serve`, which passes it in. Never answers with a secret: snippets name the
// passphrase's file, not the passphrase.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { invalidInput, notFound } from '../../errors.js';
import { clientPathProblem, clientSetup, DEFAULT_CONFIG_DIR, ENCRYPTION_REASON, hostOfHostHeader, RECOMMENDED_ENCRYPTION } from '../../gateway/client-setup.js';
import type { ApiContext } from '../api-server.js';
import { nodeOverview } from '../../store/node-store.js';
import { defineRoute } from '../route.js';
import { name, nameParams } from '../schemas.js';

const tag = 'server';

export interface SshEndpoint {
  user: string;
  port: number;
  /** The address clients should use; null when the gateway listens on every address and no --public-host was given (the console's host is used). */
  host: string | null;
  fingerprints: Array<{ type: string; fingerprint: string; publicKey?: string }>;
}

/** Without a gateway (an API started on its own), instructions name borgkeep's default port. */
const DEFAULT_SSH_PORT = 2222;

const hostKeySchema = z.object({
  type: z.string(),
  fingerprint: z.string().describe('SHA256:... as ssh-keygen -l prints it'),
  publicKey: z.string().optional().describe("the public key line, e.g. 'ssh-ed25519 AAAA...'"),
});

const snippetsSchema = z.object({ '1.7': z.string(), '1.8': z.string() });

export function serverRoutes(ctx: ApiContext, ssh: SshEndpoint | null) {
  return [
    defineRoute({
      method: 'GET',
      url: '/server',
      tag,
      summary: 'how borg clients reach this server: the SSH gateway (user, advertised host and port; null when borgkeep runs behind OpenSSH) and its host keys',
      access: 'viewer',
      response: z.object({
        ssh: z
          .object({
            user: z.string(),
            port: z.number(),
            host: z.string().nullable(),
            fingerprints: z.array(hostKeySchema),
          })
          .nullable(),
        encryption: z.string().describe('the encryption mode every instruction recommends'),
      }),
      handler: async () => ({ ssh, encryption: RECOMMENDED_ENCRYPTION }),
    }),
    defineRoute({
      method: 'GET',
      url: '/nodes',
      tag,
      summary: 'the storage nodes (PostgreSQL installations): whether each is up, its disk and how many repositories it holds; none on one machine',
      access: 'viewer',
      response: z.object({
        nodes: z.array(
          z.object({
            name: z.string(),
            address: z.string().describe("host:port of the node's SSH server, which only gateways and nodes log in to"),
            up: z.boolean().describe('renewing its heartbeat; false once it stopped or has not reported for 15 seconds'),
            heartbeatAt: z.string(),
            capacityBytes: z.number(),
            freeBytes: z.number(),
            repositories: z.number(),
            borgVersion: z.string().nullable(),
          }),
        ),
      }),
      handler: async () => ({ nodes: await nodeOverview(ctx.store, ctx.now()) }),
    }),
    defineRoute({
      method: 'GET',
      url: '/repositories/:name/setup',
      tag,
      summary: "a grant's client set-up: repository URL, known_hosts lines, shell commands, borgmatic 1.7 and 1.8 configs with the command to run, a Vorta hint",
      access: 'viewer',
      params: nameParams,
      query: z
        .object({
          key: name.describe("the grant's key, by name or id"),
          identityFile: z.string().max(256).optional().describe("the key's private file on the client; none: ssh's default key"),
          configDir: z.string().max(256).optional().describe(`where borgmatic's files live on the client (default ${DEFAULT_CONFIG_DIR})`),
        })
        .strict(),
      response: z.object({
        repository: z.string(),
        key: z.string(),
        role: z.string(),
        initialized: z.boolean(),
        encryption: z.string(),
        encryptionReason: z.string(),
        url: z.string(),
        knownHosts: z.string(),
        sshCommand: z.string(),
        shell: z.string(),
        borgmatic: snippetsSchema,
        run: snippetsSchema,
        vorta: z.string(),
      }),
      async handler({ params, query, request }) {
        const identityFile = query.identityFile?.trim() || null;
        const configDir = (query.configDir?.trim() || DEFAULT_CONFIG_DIR).replace(/(.)\/+$/, '$1');
        for (const [value, what] of [
          [identityFile, 'the key file'],
          [configDir, 'the borgmatic folder'],
        ] as const) {
          const problem = value === null ? null : clientPathProblem(value, what);
          if (problem) throw invalidInput(problem);
        }
        const repository = await ctx.store.getRepository(params.name);
        const key = await ctx.store.getKey(query.key);
        const grant = (await ctx.store.listGrants({ repositoryId: repository.id, keyId: key.id }))[0];
        if (!grant) throw notFound(`key '${key.name}' has no grant on repository '${repository.name}'`);
        const host = ssh?.host ?? hostOfHostHeader(request.headers.host) ?? 'HOST';
        const initialized = existsSync(join(ctx.store.paths.repository(repository.dirName), 'config'));
        const setup = clientSetup({
          target: { user: ssh?.user ?? 'borg', host, port: ssh?.port ?? DEFAULT_SSH_PORT },
          hostKeys: (ssh?.fingerprints ?? []).flatMap((k) => (k.publicKey ? [{ type: k.type, fingerprint: k.fingerprint, publicKey: k.publicKey }] : [])),
          repository: { name: repository.name, initialized },
          key: { name: key.name, fingerprint: key.fingerprint, role: grant.grant.role },
          identityFile,
          configDir,
        });
        return { repository: repository.name, key: key.name, role: grant.grant.role, initialized, encryption: RECOMMENDED_ENCRYPTION, encryptionReason: ENCRYPTION_REASON, ...setup };
      },
    }),
  ];
}
