// The settings of `borgkeep serve`, from flags, else the environment, else the defaults: one zod
// schema, parsed once at start-up, whose .describe() texts are the documentation. A bad value is
// one clear sentence naming the flag.

import { z } from 'zod';

import { alertConfigSchema } from '../alerts/alert-config.js';
import { invalidInput } from '../errors.js';
import { parsePublicHost } from './client-setup.js';
import { retentionInputSchema } from '../retention/retention-policy.js';
import { publicUrlSchema, ssoConfigSchema } from '../api/sso/sso-config.js';
import { parseTrustProxy } from '../api/trust-proxy.js';

/** "HOST:PORT", "[v6]:PORT" or ":PORT"; port 0 lets the system choose (tests). */
const listenAddress = z.string().transform((text, ctx) => {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):([0-9]{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    ctx.addIssue({ code: 'custom', message: `'${text}' is not HOST:PORT (e.g. 0.0.0.0:2222 or [::]:2222)` });
    return z.NEVER;
  }
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
});

/** HOST:PORT of a flag, or one clear sentence naming the flag. */
export function parseListenAddress(text: string, flag: string): { host: string; port: number } {
  const parsed = listenAddress.safeParse(text);
  if (!parsed.success) throw invalidInput(`${flag}: ${parsed.error.issues[0]?.message ?? 'is not HOST:PORT'}`);
  return parsed.data;
}

/** "HOST[:PORT]" clients are told to use (NAT, port forwarding); the port defaults to the gateway's. */
const publicHost = z.string().transform((text, ctx) => {
  const parsed = parsePublicHost(text);
  if ('error' in parsed) {
    ctx.addIssue({ code: 'custom', message: parsed.error });
    return z.NEVER;
  }
  return parsed;
});

/** Proxies whose X-Forwarded-For is believed: "ADDRESS[/PREFIX],..." (a flag) or a list (the config file). */
const trustProxy = z.union([z.string(), z.array(z.string())]).transform((input, ctx) => {
  const parsed = parseTrustProxy(input);
  if ('error' in parsed) {
    ctx.addIssue({ code: 'custom', message: parsed.error });
    return z.NEVER;
  }
  return parsed.proxies;
});

const count = (min: number) => z.coerce.number().int().min(min);

const filePath = z.string().min(1, 'needs a file name');

/**
 * Client platform (`uname -s`-`uname -m`, lowercased) -> the absolute path of a standalone borg on
 * this server. Whether each file is there and readable is checked when serve starts
 * (src/pull/borg-binaries.ts), not here: parsing reads no disk.
 */
const borgBinaries = z.record(z.string(), z.unknown()).transform((map, ctx) => {
  const out: Record<string, string> = {};
  for (const [name, path] of Object.entries(map)) {
    if (!/^[a-z0-9_]+-[a-z0-9_]+$/.test(name)) {
      ctx.addIssue({ code: 'custom', path: [name], message: "is not a platform name like linux-x86_64 (uname -s and uname -m of the client, lowercased, joined by '-')" });
    } else if (typeof path !== 'string' || !path.startsWith('/')) {
      ctx.addIssue({ code: 'custom', path: [name], message: 'needs the absolute path of a standalone borg on this server, e.g. /srv/borg/borg-linux64' });
    } else out[name] = path;
  }
  return out;
});

/** The ciphers ssh2 can offer (its SUPPORTED_CIPHER less the CBC modes). */
export const SSH_CIPHERS = ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'chacha20-poly1305@openssh.com', 'aes128-ctr', 'aes192-ctr', 'aes256-ctr'] as const;
export const DEFAULT_SSH_CIPHERS = ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com'] as const;

export const serveConfigSchema = z
  .object({
  sshListen: listenAddress.describe('where the embedded SSH gateway listens (--ssh-listen, BORGKEEP_SSH_LISTEN)').prefault('0.0.0.0:2222'),
  sshUser: z
    .string()
    .regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'is not a user name like borg')
    .describe('the SSH user name borg clients log in as (--ssh-user, BORGKEEP_SSH_USER)')
    .default('borg'),
  publicHost: publicHost
    .describe("the SSH host and port every instruction tells clients to use, HOST or HOST:PORT (--public-host, BORGKEEP_PUBLIC_HOST); for NAT and port forwarding; none: the address the gateway listens on, or the console's host, with the gateway's port")
    .optional(),
  maxSessions: count(1).describe('guarded sessions at once over all keys (--max-sessions)').default(100),
  maxSessionsPerKey: count(1).describe('guarded sessions at once for one key (--max-sessions-per-key)').default(10),
  authFailuresPerMinute: count(0)
    .describe('failed logins from one address per minute before its connections are refused; 0 turns this off (--auth-failures-per-minute)')
    .default(10),
  loginGraceSeconds: count(1).describe('time a connection has to authenticate (--login-grace)').default(30),
  idleSeconds: count(1).describe('a connection that runs no session is closed after this time (--idle-timeout)').default(60),
  shutdownGraceSeconds: count(0)
    .describe('on SIGTERM, how long running sessions may go on before they are ended and rolled back (--shutdown-grace)')
    .default(30),
  httpListen: listenAddress
    .describe('where the HTTP API and console listen (--http-listen, BORGKEEP_HTTP_LISTEN); loopback by default, put TLS or a proxy in front before opening it up')
    .prefault('127.0.0.1:8080'),
  trustProxy: trustProxy
    .describe("reverse proxies whose X-Forwarded-For (and -Proto) the HTTP API believes, addresses or ranges such as 127.0.0.1,10.0.0.0/8 (--trust-proxy, BORGKEEP_TRUST_PROXY); none: every request's address is the connection's, whatever its headers say")
    .default([]),
  tlsCert: filePath.describe('PEM certificate (chain) for HTTPS (--tls-cert, BORGKEEP_TLS_CERT); with --tls-key').optional(),
  tlsKey: filePath.describe('PEM private key for HTTPS (--tls-key, BORGKEEP_TLS_KEY); with --tls-cert').optional(),
  vaultPassphraseFile: filePath
    .describe("file holding the key vault's master passphrase (--vault-passphrase-file, BORGKEEP_VAULT_PASSPHRASE_FILE; or the systemd credential borgkeep-vault-passphrase); none: the vault uses its master key file in the data directory")
    .optional(),
  sshCiphers: z
    .array(z.enum(SSH_CIPHERS))
    .min(1, 'needs at least one cipher')
    .describe(`the ciphers the embedded SSH gateway offers, in order (config file only): any of ${SSH_CIPHERS.join(', ')}. Default AES-GCM only: OpenSSH clients pick the first of their own list the server offers, which is chacha20-poly1305 when it is offered, and with AES-GCM the gateway moves a backup faster and with less CPU (bench/gateway.bench.mjs); every OpenSSH since 6.2 has it`)
    .default([...DEFAULT_SSH_CIPHERS]),
  database: z.string().describe("PostgreSQL URL of the control plane (--database, BORGKEEP_DATABASE_URL); none: the data directory's SQLite file. Read by store/database-location.ts").optional(),
  // Only in the config file (or the environment): secrets and structured settings.
  alerts: alertConfigSchema.describe('alert thresholds, the mail server and channels; written into the store at each start').optional(),
  metricsToken: z.string().min(16, 'needs at least 16 characters').describe('bearer token /metrics asks for (BORGKEEP_METRICS_TOKEN); none: /metrics is open').optional(),
  auditPassphraseFiles: z
    .record(z.string(), filePath)
    .describe("repository name -> file holding its passphrase, so the daily audit also reads the archive lists; none: structural audits")
    .default({}),
  retention: z
    .record(z.string(), retentionInputSchema)
    .describe("repository name -> its retention policy ({keepDaily, keepWeekly, keepMonthly, keepYearly, keepLast, keepHourly, keepWithin, prefix, schedule}); set at each start, over what the CLI, API or console set; borgkeep must hold the repository's key")
    .default({}),
  pullConcurrency: count(1).describe('pull backup jobs running at once on this data directory (config file only); more wait in the queue').default(2),
  pullConcurrencyPerRepository: count(1)
    .describe('pull backup jobs running at once into one repository (config file only); borg takes one writer per repository at a time')
    .default(1),
  pullScheduleJitterSeconds: count(0)
    .describe("the longest delay after its scheduled time a host's run gets (config file only): each host its own, never more than a tenth of its schedule's interval")
    .default(300),
  databaseKeepWarmMiB: count(0)
    .describe("serve reads its database through every 30 s so the kernel keeps it cached (machines that reclaim memory ahead of need drop pages untouched for a while, and a query meeting them holds the server); databases larger than this many MiB are not read; 0 turns it off (config file only)")
    .default(1024),
  pullBorgBinaries: borgBinaries
    .describe("client platform -> standalone borg binary on this server, uploaded for the job to a pull client without borg (config file only), e.g. {\"linux-x86_64\": \"/srv/borg/borg-linux64\"}; the platform is the client's uname -s and uname -m, lowercased, joined by '-'")
    .default({}),
  publicUrl: publicUrlSchema
    .describe("the console's address as browsers reach it (BORGKEEP_PUBLIC_URL), e.g. https://backup.example.org; the OpenID redirect URL is PUBLICURL/api/v1/sso/oidc/callback")
    .optional(),
  sso: ssoConfigSchema.describe('single sign-on: oidc (issuer, clientId, clientSecretFile, roles) and ldap (url, bindDn, bindPasswordFile, userBase, roles)').optional(),
})
  .strict()
  .refine((c) => c.sso?.oidc === undefined || c.publicUrl !== undefined, {
    message: "OpenID Connect sign-on needs publicUrl, the console's address, to make its redirect URL",
    path: ['publicUrl'],
  })
  .refine((c) => (c.tlsCert === undefined) === (c.tlsKey === undefined), {
    message: 'give --tls-cert and --tls-key together',
    path: ['tlsCert'],
  });

export type ServeConfig = z.output<typeof serveConfigSchema>;

/** Which flag each setting comes from, for error messages. */
const FLAGS: Record<keyof ServeConfig, string> = {
  sshListen: '--ssh-listen',
  sshUser: '--ssh-user',
  publicHost: '--public-host',
  maxSessions: '--max-sessions',
  maxSessionsPerKey: '--max-sessions-per-key',
  authFailuresPerMinute: '--auth-failures-per-minute',
  loginGraceSeconds: '--login-grace',
  idleSeconds: '--idle-timeout',
  shutdownGraceSeconds: '--shutdown-grace',
  httpListen: '--http-listen',
  trustProxy: '--trust-proxy',
  tlsCert: '--tls-cert',
  tlsKey: '--tls-key',
  vaultPassphraseFile: '--vault-passphrase-file',
  database: '--database',
  sshCiphers: 'sshCiphers',
  alerts: 'alerts',
  metricsToken: 'metricsToken',
  auditPassphraseFiles: 'auditPassphraseFiles',
  retention: 'retention',
  pullConcurrency: 'pullConcurrency',
  pullConcurrencyPerRepository: 'pullConcurrencyPerRepository',
  pullScheduleJitterSeconds: 'pullScheduleJitterSeconds',
  databaseKeepWarmMiB: 'databaseKeepWarmMiB',
  pullBorgBinaries: 'pullBorgBinaries',
  publicUrl: 'publicUrl',
  sso: 'sso',
};

/**
 * Flags win over the environment, which wins over the config file (`file`: its parsed JSON, whose
 * keys are the names above, e.g. {"httpListen": "0.0.0.0:8080", "alerts": {...}}).
 */
export function parseServeConfig(flags: Partial<Record<keyof ServeConfig, string>>, env: NodeJS.ProcessEnv, file: Record<string, unknown> = {}): ServeConfig {
  const fromFlags = Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined));
  const input = {
    ...file,
    ...fromFlags,
    metricsToken: env.BORGKEEP_METRICS_TOKEN ?? file.metricsToken,
    publicUrl: env.BORGKEEP_PUBLIC_URL ?? file.publicUrl,
    sshListen: flags.sshListen ?? env.BORGKEEP_SSH_LISTEN ?? file.sshListen,
    sshUser: flags.sshUser ?? env.BORGKEEP_SSH_USER ?? file.sshUser,
    publicHost: flags.publicHost ?? env.BORGKEEP_PUBLIC_HOST ?? file.publicHost,
    httpListen: flags.httpListen ?? env.BORGKEEP_HTTP_LISTEN ?? file.httpListen,
    trustProxy: flags.trustProxy ?? env.BORGKEEP_TRUST_PROXY ?? file.trustProxy,
    tlsCert: flags.tlsCert ?? env.BORGKEEP_TLS_CERT ?? file.tlsCert,
    tlsKey: flags.tlsKey ?? env.BORGKEEP_TLS_KEY ?? file.tlsKey,
    vaultPassphraseFile: flags.vaultPassphraseFile ?? env.BORGKEEP_VAULT_PASSPHRASE_FILE ?? file.vaultPassphraseFile,
  };
  const parsed = serveConfigSchema.safeParse(Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)));
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = String(issue.path[0]) as keyof ServeConfig;
  const message =
    issue.code === 'custom' ? issue.message : issue.code === 'invalid_type' && /received undefined$/.test(issue.message) ? 'is missing' : `${issue.message.replace(/^Invalid input: /, '')}`;
  if (message === 'give --tls-cert and --tls-key together') throw invalidInput(message);
  if (issue.path[0] === 'publicUrl' && issue.code === 'custom' && message.startsWith('OpenID')) throw invalidInput(`config file: ${message}`);
  if (issue.code === 'unrecognized_keys') throw invalidInput(`the config file has unknown settings: ${issue.keys.join(', ')}`);
  // A value from a flag is named by its flag; one from the file by its path in the file.
  const fromFile = !(field in fromFlags) && FLAGS[field] !== undefined && !FLAGS[field].startsWith('--') ? true : !(field in fromFlags) && field in file;
  throw invalidInput(fromFile ? `config file, ${issue.path.join('.')}: ${message}` : `${FLAGS[field] ?? field}: ${message}`);
}

/**
 * Only the config file's pullBorgBinaries, in the sentences parseServeConfig gives: for
 * `borgkeep pull run`, which runs a job in its own process when no serve does.
 */
export function parsePullBorgBinaries(file: Record<string, unknown>): Record<string, string> {
  const parsed = borgBinaries.optional().safeParse(file.pullBorgBinaries);
  if (parsed.success) return parsed.data ?? {};
  const issue = parsed.error.issues[0];
  throw invalidInput(`config file, ${['pullBorgBinaries', ...issue.path].join('.')}: ${issue.code === 'custom' ? issue.message : issue.message.replace(/^Invalid input: /, '')}`);
}
