// What a client needs to reach this server over SSH (the console's copy-paste instructions):
// the SSH user, port and host of the embedded gateway, and the host key fingerprints to compare
// on the first connection. Known only to `borgkeep serve`, which passes it in.

import { z } from 'zod';
import type { ApiContext } from '../api-server.js';
import { defineRoute } from '../route.js';

const tag = 'server';

export interface SshEndpoint {
  user: string;
  port: number;
  /** The address clients should use; null when the gateway listens on every address (the console uses the host it was loaded from). */
  host: string | null;
  fingerprints: Array<{ type: string; fingerprint: string }>;
}

export function serverRoutes(_ctx: ApiContext, ssh: SshEndpoint | null) {
  return [
    defineRoute({
      method: 'GET',
      url: '/server',
      tag,
      summary: 'how borg clients reach this server: the SSH gateway (null when borgkeep runs behind OpenSSH) and its host key fingerprints',
      access: 'viewer',
      response: z.object({
        ssh: z
          .object({
            user: z.string(),
            port: z.number(),
            host: z.string().nullable(),
            fingerprints: z.array(z.object({ type: z.string(), fingerprint: z.string() })),
          })
          .nullable(),
      }),
      handler: async () => ({ ssh }),
    }),
  ];
}
