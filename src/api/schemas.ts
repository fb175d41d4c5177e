// The zod schemas the API validates input with and documents output with. Output schemas describe
// the JSON a client receives (dates as ISO-8601 strings). Names, sizes and grant terms are checked
// again by the stores, which every caller goes through; these schemas catch wrong types early and
// are what the OpenAPI document shows.

import { z } from 'zod';
import { NAME_MAX_LENGTH } from '../store/names.js';
import { ROLES, SESSION_KINDS, SESSION_RESULTS } from '../store/types.js';
import { USER_ROLES } from '../store/user-store.js';
import { RUN_KINDS } from '../store/run-kind.js';

export const time = z.iso.datetime({ offset: true });
const timeOrNull = time.nullable();
export const name = z.string().min(1).max(NAME_MAX_LENGTH);
export const keyRef = z.string().min(1).max(NAME_MAX_LENGTH).describe('key name or id');
export const userRole = z.enum(USER_ROLES);
export const grantRole = z.enum(ROLES);
/** A time in the input, as a Date. */
export const timeInput = time.transform((text) => new Date(text));

export const nameParams = z.object({ name }).strict();
export const keyParams = z.object({ key: keyRef }).strict();
export const grantParams = z.object({ key: keyRef, repository: name }).strict();
export const idParams = z.object({ id: z.coerce.number().int().positive() }).strict();

export const userSchema = z
  .object({ id: z.number(), name: z.string(), role: userRole, hasPassword: z.boolean(), totpEnabled: z.boolean(), createdAt: time, source: z.enum(['local', 'oidc', 'ldap']).describe('where the user signs in: a password here, an OpenID provider, an LDAP directory') })
  .extend({ mustChangePassword: z.boolean().describe('an admin reset the password: nothing but choosing a new one works until then') })
  .meta({ id: 'User' });

export const gateSchema = z
  .object({
    open: z.boolean().describe('whether a compaction asked for now would go through; when false it is deferred (borg compact still succeeds, frees nothing)'),
    why: z.string(),
    coveredThrough: z.number().nullable().describe('the last transaction an audit with the passphrase, an approval or an allowed compaction covered'),
    waitingTxn: z.number().nullable().describe('the newest transaction that removed or overwrote data and waits for review'),
  })
  .meta({ id: 'CompactionGate' });

export const repositorySchema = z
  .object({
    id: z.number(),
    name: z.string(),
    quotaBytes: z.number().nullable(),
    expectedIntervalSeconds: z.number(),
    createdAt: time,
    grantCount: z.number(),
    lastSessionAt: timeOrNull,
    lastWriteAt: timeOrNull.describe('end of the newest session that committed any write (a backup, a prune, a compaction) and ended ok'),
    lastBackupAt: timeOrNull.describe('end of the newest session that committed a backup (new objects besides the manifest) and ended ok; a prune or a compaction alone is no backup'),
    backup: z.enum(['ok', 'late', 'never']).describe('late: the last backup (lastBackupAt) is older than the expected interval'),
    denialsLast24h: z.number(),
    lastAudit: z.object({ at: time, verdict: z.string().nullable(), detail: z.string() }).nullable(),
    gate: gateSchema,
    lastSessionResult: z.enum(['ok', 'denied', 'error', 'aborted']).nullable().describe('the newest finished session: ok, refused (denied), failed (error) or cut off (aborted)'),
    initialized: z.boolean(),
    sizeBytes: z.number().nullable().describe('bytes on disk; null when not measured (not initialised)'),
    keyHeld: z.boolean().describe("whether borgkeep holds this repository's key in its vault (PUT /repositories/{name}/key), so it can read the archive lists itself"),
  })
  .meta({ id: 'Repository' });

export const grantSchema = z
  .object({
    keyId: z.number(),
    keyName: z.string(),
    keyFingerprint: z.string(),
    keyRevoked: z.boolean(),
    repositoryName: z.string(),
    role: grantRole,
    writesPerDay: z.number().nullable(),
    fromCidrs: z.array(z.string()).nullable(),
    expiresAt: timeOrNull,
    createdAt: time,
    minAgeSeconds: z.number().nullable().describe("prune: archives may be removed once the server first saw them this many seconds ago; null: no bound"),
    keepLast: z.number().nullable().describe('prune: the N newest archives (of the prefix, by the server\'s first sighting) are never removed; null: no bound'),
    prefix: z.string().nullable().describe('prune: only archives whose names start with this may be removed; null: any'),
    maxRemovalsPerDay: z.number().nullable().describe('prune: at most N archives removed per UTC day; null: no bound'),
    verifyObjects: z.boolean().describe("every put's id is checked against its content with the repository's key"),
  })
  .meta({ id: 'Grant' });

export const keySchema = z
  .object({
    id: z.number(),
    name: z.string(),
    type: z.string(),
    bits: z.number(),
    fingerprint: z.string(),
    comment: z.string().nullable(),
    revoked: z.boolean(),
    revokedAt: timeOrNull,
    createdAt: time,
  })
  .meta({ id: 'Key' });

const denialSchema = z.object({
  id: z.number(),
  sessionId: z.number().nullable(),
  keyId: z.number().nullable(),
  repositoryId: z.number().nullable(),
  method: z.string(),
  reason: z.string(),
  message: z.string(),
  at: time,
});

export const sessionSchema = z
  .object({
    id: z.number(),
    kind: z.enum(SESSION_KINDS).default('client').describe("'retention': the server's own borg prune and compact (no key); 'pull': the server's own session behind a pull job's proxy (no key)"),
    keyId: z.number().nullable(),
    keyName: z.string().nullable(),
    repositoryId: z.number().nullable(),
    repositoryName: z.string().nullable(),
    role: grantRole.nullable(),
    clientAddress: z.string().nullable(),
    clientVersion: z.string().nullable(),
    startedAt: time,
    endedAt: timeOrNull,
    bytesIn: z.number(),
    bytesOut: z.number(),
    result: z.enum(SESSION_RESULTS),
    detail: z.string().nullable(),
    transactions: z.array(
      z.object({
        id: z.number(),
        borgTransactionId: z.number().nullable(),
        objectsPut: z.number(),
        objectsOverwritten: z.number(),
        objectsDeleted: z.number(),
        manifestWritten: z.boolean(),
        state: z.enum(['committed', 'rolled_back']),
        startedAt: time,
        endedAt: time,
      }),
    ),
    denials: z.array(denialSchema),
    runKind: z.enum(RUN_KINDS).optional().describe('what kind of run it was, judged from what it did (ledger lists; not in live events)'),
    archives: z.array(z.object({ name: z.string(), transactionId: z.number() })).optional().describe('archives its transactions added, where an audit or the vault saw them'),
  })
  .meta({ id: 'Session' });

export const denialListItem = denialSchema.extend({ keyName: z.string().nullable(), repositoryName: z.string().nullable() }).meta({ id: 'Denial' });

export const tokenSchema = z
  .object({
    id: z.number(),
    name: z.string(),
    prefix: z.string(),
    user: z.string(),
    role: userRole,
    createdAt: time,
    expiresAt: timeOrNull,
    lastUsedAt: timeOrNull,
    revokedAt: timeOrNull,
  })
  .meta({ id: 'ApiToken' });

export const ledgerQuery = z
  .object({
    repository: name.optional().describe('only this repository'),
    key: keyRef.optional().describe('only this key (name or id)'),
    from: timeInput.optional().describe('from this time on (inclusive)'),
    to: timeInput.optional().describe('before this time'),
    limit: z.coerce.number().int().min(1).max(500).default(50).describe('rows per page'),
    cursor: z.string().max(200).optional().describe('the `next` of the previous page'),
  })
  .strict();

// Numbers and ranges are only typed here: their bounds are checked by checkGrantTerms
// (store/grant-terms.ts), so the API refuses them in the CLI's sentences, not the schema library's.
export const grantTermsInput = {
  role: grantRole,
  writesPerDay: z.number().nullable().optional().describe('backups per rolling 24 h, a whole number of at least 1 (sessions that commit new objects besides the manifest; prune, compact and reads do not count); null: no limit'),
  fromCidrs: z.array(z.string().max(64)).nullable().optional().describe('allowed client address ranges (at most 64); null: any'),
  expiresAt: timeInput.nullable().optional().describe('null: never'),
  minAgeSeconds: z.number().nullable().optional().describe("prune only: archives may be removed once the server first saw them this many seconds ago (enforced when borgkeep holds the repository's key); null: no bound"),
  keepLast: z.number().nullable().optional().describe("prune only: the N newest archives (of the prefix, by the server's first sighting) are never removed; null: no bound"),
  prefix: z.string().nullable().optional().describe('prune only: only archives whose names start with this (1 to 255 characters) may be removed; null: any'),
  maxRemovalsPerDay: z.number().nullable().optional().describe('prune only: at most N archives removed per UTC day; null: no bound'),
  verifyObjects: z.boolean().optional().describe("append, prune, full: every put's id is checked against its content with the repository's key"),
};
