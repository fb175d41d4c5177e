// The database schema, as an ordered list of migrations run by Kysely's Migrator.
// Written with Kysely's schema builder, so the same migrations create the schema on PostgreSQL
// (postgres-dialect.ts maps the types); the triggers of 0006, 0011 and 0020 have a form for each.
// A migration, once released, never changes what it does on SQLite (its PostgreSQL form came
// later, beside it); change the schema with a new one (names sort in run order).

import { SqliteAdapter, sql, type Kysely, type Migration, type MigrationProvider, type CreateTableBuilder } from 'kysely';
import { classifyRun } from './run-kind.js';
import type { Database } from './schema.js';

const ROLE_CHECK = sql`role in ('read', 'append', 'prune', 'full')`;

/**
 * Integer id that is never reused. SQLite's AUTOINCREMENT (unlike a bare INTEGER PRIMARY KEY)
 * guarantees that, which matters: authorized_keys lines and old ledger rows name keys by id.
 * PostgreSQL gets the same from an identity column.
 */
function withId<T extends string>(db: Kysely<unknown>, table: CreateTableBuilder<T, never>): CreateTableBuilder<T, 'id'> {
  const sqlite = db.getExecutor().adapter instanceof SqliteAdapter;
  return table.addColumn('id', 'integer', (col) =>
    sqlite ? col.primaryKey().autoIncrement() : col.primaryKey().generatedByDefaultAsIdentity(),
  );
}

const isSqlite = (db: Kysely<unknown>) => db.getExecutor().adapter instanceof SqliteAdapter;

/**
 * A row trigger on PostgreSQL: plpgsql function NAME_fn running `body` (statements ending in ';'),
 * fired `when` (e.g. 'after update of a, b on t'), only where `condition` holds if given. The
 * SQLite triggers of 0006, 0011 and 0020 in PostgreSQL's form (issue 19).
 */
async function createPgTrigger(db: Kysely<unknown>, name: string, when: string, body: string, condition?: string): Promise<void> {
  await sql.raw(`create function ${name}_fn() returns trigger language plpgsql as $$ begin ${body} return null; end $$`).execute(db);
  await sql.raw(`create trigger ${name} ${when} for each row ${condition ? `when (${condition}) ` : ''}execute function ${name}_fn()`).execute(db);
}

async function dropPgTrigger(db: Kysely<unknown>, name: string, table: string): Promise<void> {
  await sql.raw(`drop trigger ${name} on ${table}`).execute(db);
  await sql.raw(`drop function ${name}_fn()`).execute(db);
}

/** A row trigger in the database's own form: SQLite's `create trigger NAME WHEN begin BODY end` as released, or createPgTrigger. */
async function createTrigger(db: Kysely<unknown>, name: string, when: string, body: string): Promise<void> {
  if (isSqlite(db)) await sql.raw(`create trigger ${name} ${when} begin ${body} end`).execute(db);
  else await createPgTrigger(db, name, when, body);
}

/** Drops a trigger made by createTrigger (or 0006's), on `table`. */
async function dropTrigger(db: Kysely<unknown>, name: string, table: string): Promise<void> {
  if (isSqlite(db)) await sql.raw(`drop trigger ${name}`).execute(db);
  else await dropPgTrigger(db, name, table);
}

const initial: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await withId(db, db.schema.createTable('users'))
      .addColumn('name', 'text', (col) => col.notNull().unique())
      .addColumn('role', 'text', (col) => col.notNull())
      .addColumn('password_hash', 'text')
      .addColumn('created_at', 'text', (col) => col.notNull())
      .addCheckConstraint('users_role_check', sql`role in ('admin', 'operator', 'viewer')`)
      .execute();

    await withId(db, db.schema.createTable('repositories'))
      .addColumn('name', 'text', (col) => col.notNull().unique())
      .addColumn('dir_name', 'text', (col) => col.notNull().unique())
      .addColumn('quota_bytes', 'bigint')
      .addColumn('created_at', 'text', (col) => col.notNull())
      .execute();

    await withId(db, db.schema.createTable('ssh_keys'))
      .addColumn('name', 'text', (col) => col.notNull().unique())
      .addColumn('type', 'text', (col) => col.notNull())
      .addColumn('blob', 'text', (col) => col.notNull())
      .addColumn('fingerprint', 'text', (col) => col.notNull())
      .addColumn('comment', 'text')
      .addColumn('bits', 'integer', (col) => col.notNull())
      .addColumn('created_at', 'text', (col) => col.notNull())
      .addColumn('revoked_at', 'text')
      .addUniqueConstraint('ssh_keys_type_blob_unique', ['type', 'blob'])
      .execute();

    await withId(db, db.schema.createTable('grants'))
      .addColumn('key_id', 'integer', (col) => col.notNull().references('ssh_keys.id').onDelete('cascade'))
      .addColumn('repository_id', 'integer', (col) => col.notNull().references('repositories.id').onDelete('cascade'))
      .addColumn('role', 'text', (col) => col.notNull())
      .addColumn('writes_per_day', 'integer')
      .addColumn('from_cidrs', 'text')
      .addColumn('expires_at', 'text')
      .addColumn('created_at', 'text', (col) => col.notNull())
      .addUniqueConstraint('grants_key_repository_unique', ['key_id', 'repository_id'])
      .addCheckConstraint('grants_role_check', ROLE_CHECK)
      .execute();
    await db.schema.createIndex('grants_repository_idx').on('grants').column('repository_id').execute();

    // Sessions outlive their key's and repository's registration: the ids go null, the copied
    // names stay, so the ledger keeps its history.
    await withId(db, db.schema.createTable('sessions'))
      .addColumn('key_id', 'integer', (col) => col.references('ssh_keys.id').onDelete('set null'))
      .addColumn('key_name', 'text')
      .addColumn('repository_id', 'integer', (col) => col.references('repositories.id').onDelete('set null'))
      .addColumn('repository_name', 'text')
      .addColumn('role', 'text')
      .addColumn('client_address', 'text')
      .addColumn('client_version', 'text')
      .addColumn('started_at', 'text', (col) => col.notNull())
      .addColumn('ended_at', 'text')
      .addColumn('bytes_in', 'bigint', (col) => col.notNull().defaultTo(0))
      .addColumn('bytes_out', 'bigint', (col) => col.notNull().defaultTo(0))
      .addColumn('result', 'text', (col) => col.notNull().defaultTo('open'))
      .addColumn('detail', 'text')
      .addColumn('pid', 'integer')
      .addColumn('host', 'text')
      .addCheckConstraint('sessions_role_check', sql`role is null or ${ROLE_CHECK}`)
      .addCheckConstraint('sessions_result_check', sql`result in ('open', 'ok', 'denied', 'error', 'aborted')`)
      .execute();
    await db.schema.createIndex('sessions_started_idx').on('sessions').column('started_at').execute();
    await db.schema
      .createIndex('sessions_repository_started_idx')
      .on('sessions')
      .columns(['repository_id', 'started_at'])
      .execute();
    // Also serves the backups-per-day count (key, repository, since).
    await db.schema
      .createIndex('sessions_key_repository_started_idx')
      .on('sessions')
      .columns(['key_id', 'repository_id', 'started_at'])
      .execute();
    await db.schema.createIndex('sessions_result_idx').on('sessions').column('result').execute();

    await withId(db, db.schema.createTable('transactions'))
      .addColumn('session_id', 'integer', (col) => col.notNull().references('sessions.id').onDelete('cascade'))
      .addColumn('borg_transaction_id', 'bigint')
      .addColumn('objects_put', 'integer', (col) => col.notNull())
      .addColumn('objects_overwritten', 'integer', (col) => col.notNull())
      .addColumn('objects_deleted', 'integer', (col) => col.notNull())
      .addColumn('manifest_written', 'integer', (col) => col.notNull())
      .addColumn('state', 'text', (col) => col.notNull())
      .addColumn('started_at', 'text', (col) => col.notNull())
      .addColumn('ended_at', 'text', (col) => col.notNull())
      .addCheckConstraint('transactions_state_check', sql`state in ('committed', 'rolled_back')`)
      .execute();
    await db.schema.createIndex('transactions_session_idx').on('transactions').column('session_id').execute();

    await withId(db, db.schema.createTable('denials'))
      .addColumn('session_id', 'integer', (col) => col.references('sessions.id').onDelete('cascade'))
      .addColumn('key_id', 'integer', (col) => col.references('ssh_keys.id').onDelete('set null'))
      .addColumn('repository_id', 'integer', (col) => col.references('repositories.id').onDelete('set null'))
      .addColumn('method', 'text', (col) => col.notNull())
      .addColumn('reason', 'text', (col) => col.notNull())
      .addColumn('message', 'text', (col) => col.notNull())
      .addColumn('at', 'text', (col) => col.notNull())
      .execute();
    await db.schema.createIndex('denials_session_idx').on('denials').column('session_id').execute();
    await db.schema.createIndex('denials_at_idx').on('denials').column('at').execute();
  },

  async down(db: Kysely<unknown>): Promise<void> {
    for (const table of ['denials', 'transactions', 'sessions', 'grants', 'ssh_keys', 'repositories', 'users']) {
      await db.schema.dropTable(table).execute();
    }
  },
};

/**
 * What admins do to a repository's history, beside the sessions: audits with their verdict,
 * approvals that open the compaction gate, rollbacks and their undo. `through_txn` is the last
 * borg transaction an audit or approval covered; the gate is open while the newest gate event
 * says so (see audit-store.ts).
 */
const repositoryEvents: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await withId(db, db.schema.createTable('repository_events'))
      .addColumn('repository_id', 'integer', (col) => col.notNull().references('repositories.id').onDelete('cascade'))
      .addColumn('kind', 'text', (col) => col.notNull())
      .addColumn('through_txn', 'bigint')
      .addColumn('verdict', 'text')
      .addColumn('actor', 'text', (col) => col.notNull())
      .addColumn('detail', 'text', (col) => col.notNull())
      .addColumn('at', 'text', (col) => col.notNull())
      .addCheckConstraint('repository_events_kind_check', sql`kind in ('audit', 'approve', 'rollback', 'rollback-undo')`)
      .execute();
    await db.schema.createIndex('repository_events_repository_idx').on('repository_events').columns(['repository_id', 'id']).execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable('repository_events').execute();
  },
};

/** How often a repository is expected to get a backup when nothing says otherwise: a daily job plus slack. */
export const DEFAULT_EXPECTED_INTERVAL_SECONDS = 26 * 3600;

/**
 * The HTTP API and console: a repository's expected backup interval (its backup is late after
 * that), the stored report of each audit, users' second factor (TOTP), console login sessions
 * and API tokens. Session ids and tokens are stored as SHA-256 hashes only: the database alone
 * never lets anyone log in.
 */
const consoleAuth: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .alterTable('repositories')
      .addColumn('expected_interval_seconds', 'integer', (col) => col.notNull().defaultTo(DEFAULT_EXPECTED_INTERVAL_SECONDS))
      .execute();
    // The whole report an audit printed (JSON), so the console can show the last one again.
    await db.schema.alterTable('repository_events').addColumn('report', 'text').execute();
    // A TOTP secret (base32) is pending until a code confirms it; totp_last_step refuses a code twice.
    await db.schema.alterTable('users').addColumn('totp_secret', 'text').execute();
    await db.schema.alterTable('users').addColumn('totp_enabled', 'integer', (col) => col.notNull().defaultTo(0)).execute();
    await db.schema.alterTable('users').addColumn('totp_last_step', 'bigint').execute();

    await withId(db, db.schema.createTable('console_sessions'))
      .addColumn('user_id', 'integer', (col) => col.notNull().references('users.id').onDelete('cascade'))
      .addColumn('id_hash', 'text', (col) => col.notNull().unique())
      .addColumn('address', 'text')
      .addColumn('created_at', 'text', (col) => col.notNull())
      .addColumn('last_seen_at', 'text', (col) => col.notNull())
      .addColumn('expires_at', 'text', (col) => col.notNull())
      .execute();
    await db.schema.createIndex('console_sessions_user_idx').on('console_sessions').column('user_id').execute();

    await withId(db, db.schema.createTable('api_tokens'))
      .addColumn('user_id', 'integer', (col) => col.notNull().references('users.id').onDelete('cascade'))
      .addColumn('name', 'text', (col) => col.notNull())
      .addColumn('token_hash', 'text', (col) => col.notNull().unique())
      .addColumn('prefix', 'text', (col) => col.notNull())
      .addColumn('role', 'text', (col) => col.notNull())
      .addColumn('created_at', 'text', (col) => col.notNull())
      .addColumn('expires_at', 'text')
      .addColumn('last_used_at', 'text')
      .addColumn('revoked_at', 'text')
      .addCheckConstraint('api_tokens_role_check', sql`role in ('admin', 'operator', 'viewer')`)
      .execute();
    await db.schema.createIndex('api_tokens_user_idx').on('api_tokens').column('user_id').execute();
    await db.schema.createIndex('denials_repository_at_idx').on('denials').columns(['repository_id', 'at']).execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropIndex('denials_repository_at_idx').execute();
    await db.schema.dropTable('api_tokens').execute();
    await db.schema.dropTable('console_sessions').execute();
    for (const column of ['totp_last_step', 'totp_enabled', 'totp_secret']) await db.schema.alterTable('users').dropColumn(column).execute();
    await db.schema.alterTable('repository_events').dropColumn('report').execute();
    await db.schema.alterTable('repositories').dropColumn('expected_interval_seconds').execute();
  },
};

/**
 * Monitoring and alerts: the channels alerts go to (mail, webhooks), the alerts themselves (one
 * row per time a condition held: opened, notified, resolved), each delivery attempt, the
 * scheduler's jobs with their last run, daily repository statistics, failed logins of known
 * keys, and named settings (alert thresholds, the mail server) as JSON.
 */
const monitoring: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await withId(db, db.schema.createTable('alert_channels'))
      .addColumn('name', 'text', (col) => col.notNull().unique())
      .addColumn('kind', 'text', (col) => col.notNull())
      // Mail: comma-separated addresses. Webhook: the URL.
      .addColumn('target', 'text', (col) => col.notNull())
      // Webhook: json (signed), slack, discord or text.
      .addColumn('format', 'text')
      // Webhook: the HMAC-SHA256 signing secret.
      .addColumn('secret', 'text')
      .addColumn('enabled', 'integer', (col) => col.notNull().defaultTo(1))
      .addColumn('created_at', 'text', (col) => col.notNull())
      .addCheckConstraint('alert_channels_kind_check', sql`kind in ('email', 'webhook')`)
      .execute();

    await withId(db, db.schema.createTable('alerts'))
      .addColumn('key', 'text', (col) => col.notNull())
      .addColumn('rule', 'text', (col) => col.notNull())
      .addColumn('severity', 'text', (col) => col.notNull())
      .addColumn('repository_id', 'integer', (col) => col.references('repositories.id').onDelete('set null'))
      .addColumn('summary', 'text', (col) => col.notNull())
      .addColumn('detail', 'text', (col) => col.notNull())
      .addColumn('opened_at', 'text', (col) => col.notNull())
      .addColumn('last_notified_at', 'text', (col) => col.notNull())
      .addColumn('notifications', 'integer', (col) => col.notNull().defaultTo(1))
      .addColumn('resolved_at', 'text')
      .execute();
    await db.schema.createIndex('alerts_open_idx').on('alerts').columns(['resolved_at', 'key']).execute();

    await withId(db, db.schema.createTable('alert_deliveries'))
      .addColumn('alert_id', 'integer', (col) => col.references('alerts.id').onDelete('cascade'))
      .addColumn('channel_id', 'integer', (col) => col.references('alert_channels.id').onDelete('cascade'))
      .addColumn('channel_name', 'text', (col) => col.notNull())
      .addColumn('event', 'text', (col) => col.notNull())
      .addColumn('state', 'text', (col) => col.notNull())
      .addColumn('attempts', 'integer', (col) => col.notNull().defaultTo(0))
      .addColumn('last_error', 'text')
      .addColumn('created_at', 'text', (col) => col.notNull())
      .addColumn('finished_at', 'text')
      .execute();
    await db.schema.createIndex('alert_deliveries_alert_idx').on('alert_deliveries').column('alert_id').execute();

    await db.schema
      .createTable('jobs')
      .addColumn('name', 'text', (col) => col.primaryKey())
      .addColumn('last_started_at', 'text')
      .addColumn('last_finished_at', 'text')
      .addColumn('last_result', 'text')
      .addColumn('last_detail', 'text')
      .execute();

    await withId(db, db.schema.createTable('repository_stats'))
      .addColumn('repository_id', 'integer', (col) => col.notNull().references('repositories.id').onDelete('cascade'))
      .addColumn('at', 'text', (col) => col.notNull())
      .addColumn('size_bytes', 'bigint', (col) => col.notNull())
      .addColumn('objects', 'bigint')
      // What compaction would free (borg's hints: the free space of each segment).
      .addColumn('reclaimable_bytes', 'bigint')
      // borg's storage_quota_use (hints): bytes of the live objects.
      .addColumn('storage_used_bytes', 'bigint')
      .execute();
    await db.schema.createIndex('repository_stats_repository_idx').on('repository_stats').columns(['repository_id', 'at']).execute();

    await withId(db, db.schema.createTable('auth_failures'))
      .addColumn('key_id', 'integer', (col) => col.references('ssh_keys.id').onDelete('cascade'))
      .addColumn('address', 'text')
      .addColumn('reason', 'text', (col) => col.notNull())
      .addColumn('at', 'text', (col) => col.notNull())
      .execute();
    await db.schema.createIndex('auth_failures_at_idx').on('auth_failures').columns(['at']).execute();

    await db.schema
      .createTable('settings')
      .addColumn('name', 'text', (col) => col.primaryKey())
      .addColumn('value', 'text', (col) => col.notNull())
      .addColumn('updated_at', 'text', (col) => col.notNull())
      .execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    for (const table of ['settings', 'auth_failures', 'repository_stats', 'jobs', 'alert_deliveries', 'alerts', 'alert_channels']) await db.schema.dropTable(table).execute();
  },
};

/**
 * Indexes the console's busiest reads need once the ledger is large (found by
 * bench/api.bench.mjs, 100,000 sessions): a repository's newest successful session (the
 * dashboard's last backup, per repository) searched by (repository, result, end) instead of
 * walking every session with that result; and sessions by result newest first (the ledger
 * filtered by result, the live view's open sessions), which also serves everything the
 * single-column result index served, so that one goes.
 */
const ledgerIndexes: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.createIndex('sessions_repository_result_ended_idx').on('sessions').columns(['repository_id', 'result', 'ended_at']).execute();
    await db.schema.createIndex('sessions_result_started_idx').on('sessions').columns(['result', 'started_at']).execute();
    await db.schema.dropIndex('sessions_result_idx').execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.createIndex('sessions_result_idx').on('sessions').column('result').execute();
    await db.schema.dropIndex('sessions_result_started_idx').execute();
    await db.schema.dropIndex('sessions_repository_result_ended_idx').execute();
  },
};

/**
 * A version per repository that every write changing its status bumps, so the dashboard's status
 * list can read again only the repositories that changed (see listRepositoryStatuses) instead of
 * every repository whenever anything was written (a running backup writes its progress every
 * 2 s). The bumps are triggers, so every process that writes the ledger (`serve`, sshd's forced
 * command, the CLI) keeps them without knowing of them: a session starting, being assigned its
 * repository or ending; a transaction recorded; a grant added or removed. A session's byte
 * counters are not in the status and bump nothing, nor do denials: their count is over a moving
 * window of time, read on its own. The repository store bumps the version itself when it changes
 * the repository's own row.
 *
 * On PostgreSQL the same triggers are plpgsql functions (createPgTrigger).
 */
const STATUS_TRIGGERS: ReadonlyArray<readonly [name: string, table: string]> = [
  ['sessions_insert', 'sessions'],
  ['sessions_update', 'sessions'],
  ['sessions_delete', 'sessions'],
  ['transactions_insert', 'transactions'],
  ['transactions_update', 'transactions'],
  ['transactions_delete', 'transactions'],
  ['grants_insert', 'grants'],
  ['grants_update', 'grants'],
  ['grants_delete', 'grants'],
];
const repositoryStatusVersions: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('repositories').addColumn('status_version', 'integer', (col) => col.notNull().defaultTo(0)).execute();
    const bump = (id: string) => `update repositories set status_version = status_version + 1 where id = ${id};`;
    const ofSession = (sessionId: string) => bump(`(select repository_id from sessions where id = ${sessionId})`);
    if (!isSqlite(db)) {
      const t = (name: string, when: string, body: string, condition?: string) => createPgTrigger(db, `repository_status_${name}`, when, body, condition);
      await t('sessions_insert', 'after insert on sessions', bump('new.repository_id'), 'new.repository_id is not null');
      await t(
        'sessions_update',
        'after update of repository_id, result, ended_at on sessions',
        `${bump('new.repository_id')} update repositories set status_version = status_version + 1 where id = old.repository_id and old.repository_id is distinct from new.repository_id;`,
      );
      await t('sessions_delete', 'after delete on sessions', bump('old.repository_id'));
      await t('transactions_insert', 'after insert on transactions', ofSession('new.session_id'));
      await t('transactions_update', 'after update of state, session_id on transactions', `${ofSession('new.session_id')} ${ofSession('old.session_id')}`);
      await t('transactions_delete', 'after delete on transactions', ofSession('old.session_id'));
      await t('grants_insert', 'after insert on grants', bump('new.repository_id'));
      await t('grants_update', 'after update of repository_id on grants', `${bump('new.repository_id')} ${bump('old.repository_id')}`);
      await t('grants_delete', 'after delete on grants', bump('old.repository_id'));
      return;
    }
    const triggers: Array<[string, string, string]> = [
      ['sessions_insert', 'after insert on sessions when new.repository_id is not null', bump('new.repository_id')],
      [
        'sessions_update',
        'after update of repository_id, result, ended_at on sessions',
        `${bump('new.repository_id')} update repositories set status_version = status_version + 1 where id = old.repository_id and old.repository_id is not new.repository_id;`,
      ],
      ['sessions_delete', 'after delete on sessions', bump('old.repository_id')],
      ['transactions_insert', 'after insert on transactions', ofSession('new.session_id')],
      ['transactions_update', 'after update of state, session_id on transactions', `${ofSession('new.session_id')} ${ofSession('old.session_id')}`],
      ['transactions_delete', 'after delete on transactions', ofSession('old.session_id')],
      ['grants_insert', 'after insert on grants', bump('new.repository_id')],
      ['grants_update', 'after update of repository_id on grants', `${bump('new.repository_id')} ${bump('old.repository_id')}`],
      ['grants_delete', 'after delete on grants', bump('old.repository_id')],
    ];
    for (const [name, when, body] of triggers) await createTrigger(db, `repository_status_${name}`, when, body);
  },
  async down(db: Kysely<unknown>): Promise<void> {
    for (const [name, table] of STATUS_TRIGGERS) await dropTrigger(db, `repository_status_${name}`, table);
    await db.schema.alterTable('repositories').dropColumn('status_version').execute();
  },
};

/**
 * Wave 2's repository events besides audits, approvals and rollbacks: a repository key replaced
 * or restored (`key-change`, `key-restore`), a compaction the gate let through or deferred
 * (`compaction`, `compaction-deferred`). SQLite cannot change a check constraint in place, so the
 * table is built again with the wider one and its rows copied.
 */
export const REPOSITORY_EVENT_KINDS = ['audit', 'approve', 'rollback', 'rollback-undo', 'key-change', 'key-restore', 'compaction', 'compaction-deferred'] as const;
const repositoryEventKinds: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    const kinds = sql.join(REPOSITORY_EVENT_KINDS.map((k) => sql.lit(k)));
    await withId(db, db.schema.createTable('repository_events_new'))
      .addColumn('repository_id', 'integer', (col) => col.notNull().references('repositories.id').onDelete('cascade'))
      .addColumn('kind', 'text', (col) => col.notNull())
      .addColumn('through_txn', 'bigint')
      .addColumn('verdict', 'text')
      .addColumn('actor', 'text', (col) => col.notNull())
      .addColumn('detail', 'text', (col) => col.notNull())
      .addColumn('at', 'text', (col) => col.notNull())
      .addColumn('report', 'text')
      .addCheckConstraint('repository_events_kind_check', sql`kind in (${kinds})`)
      .execute();
    await sql`insert into repository_events_new (id, repository_id, kind, through_txn, verdict, actor, detail, at, report)
      select id, repository_id, kind, through_txn, verdict, actor, detail, at, report from repository_events`.execute(db);
    await db.schema.dropTable('repository_events').execute();
    await db.schema.alterTable('repository_events_new').renameTo('repository_events').execute();
    // PostgreSQL's identity column does not see the copied ids: its next value starts past them.
    if (!isSqlite(db)) await sql`select setval(pg_get_serial_sequence('repository_events', 'id'), coalesce(max(id), 0) + 1, false) from repository_events`.execute(db);
    await db.schema.createIndex('repository_events_repository_idx').on('repository_events').columns(['repository_id', 'id']).execute();
  },
  async down(): Promise<void> {
    throw new Error('migration 0007 cannot be undone: later kinds of events would not fit the old table');
  },
};

/**
 * Backups per day (a grant's --writes-per-day) are decided by claims: a session that is about to
 * write its first new object besides the manifest claims one of its grant's backups of the last
 * 24 hours, in one transaction that counts and inserts (ledger-store.ts claimBackup), so sessions
 * that race each other cannot all get past the limit. A claim counts while its session runs;
 * once the session ended, only a committed transaction with new objects makes it a backup.
 */
const backupClaims: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await withId(db, db.schema.createTable('backup_claims'))
      .addColumn('session_id', 'integer', (col) => col.notNull().unique().references('sessions.id').onDelete('cascade'))
      .addColumn('key_id', 'integer', (col) => col.notNull())
      .addColumn('repository_id', 'integer', (col) => col.notNull())
      .addColumn('claimed_at', 'text', (col) => col.notNull())
      .execute();
    await db.schema.createIndex('backup_claims_key_repository_idx').on('backup_claims').columns(['key_id', 'repository_id', 'claimed_at']).execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable('backup_claims').execute();
  },
};

/**
 * When the server first saw each archive (wave 2, issue 13): per repository, archive id and name,
 * the client's time as written in the manifest and the server's own time of the transaction that
 * first listed it. Audits fill it (audit-service.ts) and keep the earliest sighting, so it outlives
 * compactions and rollbacks; retention rules will be based on it. `baseline` marks a sighting in
 * the first manifest after a compaction: the archive appeared then or earlier.
 */
const archiveSightings: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('archive_sightings')
      .addColumn('repository_id', 'integer', (col) => col.notNull().references('repositories.id').onDelete('cascade'))
      .addColumn('archive_id', 'text', (col) => col.notNull())
      .addColumn('name', 'text', (col) => col.notNull())
      .addColumn('client_time', 'text', (col) => col.notNull())
      .addColumn('first_seen_at', 'text', (col) => col.notNull())
      .addColumn('transaction_id', 'bigint', (col) => col.notNull())
      .addColumn('baseline', 'integer', (col) => col.notNull().defaultTo(0))
      .addPrimaryKeyConstraint('archive_sightings_pk', ['repository_id', 'archive_id', 'name'])
      .execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable('archive_sightings').execute();
  },
};

/**
 * Deletes of objects that the deleting session did not write itself, per transaction: what makes
 * a transaction need review before compaction (audit/compaction-gate.ts), so the dashboard can
 * say whether a compaction would go through without reading the repository. Null for
 * transactions recorded before this column: they count as if every delete were of older objects.
 * A repository event now bumps the repository's status version too (0006): the status shows the
 * gate, which approvals, audits, compactions and rollbacks move.
 */
const transactionOlderDeletes: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('transactions').addColumn('objects_deleted_older', 'integer').execute();
    const body = 'update repositories set status_version = status_version + 1 where id = new.repository_id;';
    await createTrigger(db, 'repository_status_events_insert', 'after insert on repository_events', body);
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await dropTrigger(db, 'repository_status_events_insert', 'repository_events');
    await db.schema.alterTable('transactions').dropColumn('objects_deleted_older').execute();
  },
};

/**
 * Retention run by the server (issue 14): one policy per repository (borg prune's keep rules, an
 * archive-name prefix, a cron schedule) with the result of its last run, and a kind per ledger
 * session, so a retention run (the server's own borg prune and compact through the guard) is told
 * apart from a client's session. Sessions recorded before this are clients'.
 */
const retention: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('retention_policies')
      .addColumn('repository_id', 'integer', (col) => col.primaryKey().references('repositories.id').onDelete('cascade'))
      .addColumn('keep_last', 'integer')
      .addColumn('keep_hourly', 'integer')
      .addColumn('keep_daily', 'integer')
      .addColumn('keep_weekly', 'integer')
      .addColumn('keep_monthly', 'integer')
      .addColumn('keep_yearly', 'integer')
      .addColumn('keep_within', 'text')
      .addColumn('prefix', 'text')
      .addColumn('schedule', 'text', (col) => col.notNull())
      .addColumn('updated_at', 'text', (col) => col.notNull())
      .addColumn('updated_by', 'text', (col) => col.notNull())
      .addColumn('last_run_at', 'text')
      .addColumn('last_result', 'text')
      .addColumn('last_detail', 'text')
      .addCheckConstraint('retention_policies_result_check', sql`last_result is null or last_result in ('ok', 'warning', 'error')`)
      .execute();
    await db.schema
      .alterTable('sessions')
      .addColumn('kind', 'text', (col) => col.notNull().defaultTo('client'))
      .execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('sessions').dropColumn('kind').execute();
    await db.schema.dropTable('retention_policies').execute();
  },
};

/**
 * Archive rules of a grant, enforced by the guard at the manifest put when borgkeep holds the
 * repository's key (issue 14; src/guard/archive-rules.ts): a prune grant's retention rule
 * (min_age_seconds, keep_last, prefix, max_removals_per_day; null: no such bound) and
 * verify_objects (every put's id checked against its content). Per transaction, archive_checked:
 * every manifest put of it was judged at the commit with the key and allowed by the session's
 * role with nothing suspicious. removal_claims count a prune grant's archive removals per UTC day,
 * claimed atomically at the manifest put (as backup_claims do for backups), released again when
 * borg rolls the transaction back.
 */
const grantArchiveRules: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('grants').addColumn('min_age_seconds', 'bigint').execute();
    await db.schema.alterTable('grants').addColumn('keep_last', 'integer').execute();
    await db.schema.alterTable('grants').addColumn('prefix', 'text').execute();
    await db.schema.alterTable('grants').addColumn('max_removals_per_day', 'integer').execute();
    await db.schema.alterTable('grants').addColumn('verify_objects', 'integer', (col) => col.notNull().defaultTo(0)).execute();
    await db.schema.alterTable('transactions').addColumn('archive_checked', 'integer', (col) => col.notNull().defaultTo(0)).execute();
    await withId(db, db.schema.createTable('removal_claims'))
      .addColumn('session_id', 'integer', (col) => col.notNull().references('sessions.id').onDelete('cascade'))
      .addColumn('grant_id', 'integer', (col) => col.notNull())
      .addColumn('repository_id', 'integer', (col) => col.notNull())
      /** The UTC day of the claim, YYYY-MM-DD. */
      .addColumn('day', 'text', (col) => col.notNull())
      .addColumn('archives', 'integer', (col) => col.notNull())
      .addColumn('claimed_at', 'text', (col) => col.notNull())
      .execute();
    await db.schema.createIndex('removal_claims_grant_day_idx').on('removal_claims').columns(['grant_id', 'repository_id', 'day']).execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable('removal_claims').execute();
    await db.schema.alterTable('transactions').dropColumn('archive_checked').execute();
    for (const c of ['verify_objects', 'max_removals_per_day', 'prefix', 'keep_last', 'min_age_seconds']) await db.schema.alterTable('grants').dropColumn(c).execute();
  },
};

/** Issue 15's account page: recovery codes, "must change the password" after an admin's reset, token names unique per user. */
const account: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('users').addColumn('must_change_password', 'integer', (col) => col.notNull().defaultTo(0)).execute();
    await withId(db, db.schema.createTable('recovery_codes'))
      .addColumn('user_id', 'integer', (col) => col.notNull().references('users.id').onDelete('cascade'))
      /** SHA-256 (hex) of the normalised code: 80 random bits, so a plain hash is enough; never the code. */
      .addColumn('code_hash', 'text', (col) => col.notNull())
      .addColumn('used_at', 'text')
      .execute();
    await db.schema.createIndex('recovery_codes_user_idx').on('recovery_codes').columns(['user_id', 'code_hash']).execute();
    // Names of live tokens were not unique before: older duplicates keep working under "name-id".
    await sql`update api_tokens set name = name || '-' || id where revoked_at is null and exists (
      select 1 from api_tokens t2 where t2.user_id = api_tokens.user_id and t2.name = api_tokens.name and t2.revoked_at is null and t2.id < api_tokens.id)`.execute(db);
    // A revoked token's name may be used again.
    await db.schema.createIndex('api_tokens_user_name_idx').on('api_tokens').columns(['user_id', 'name']).unique().where(sql.ref('revoked_at'), 'is', null).execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropIndex('api_tokens_user_name_idx').execute();
    await db.schema.dropTable('recovery_codes').execute();
    await db.schema.alterTable('users').dropColumn('must_change_password').execute();
  },
};

/**
 * A key's newest session (the Keys page's "last used"), found by one index seek per key rather
 * than by walking every session of the key across its repositories (the (key, repository,
 * started) index cannot answer max(started) for a key without the repository).
 */
const keyLastUsed: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.createIndex('sessions_key_started_idx').on('sessions').columns(['key_id', 'started_at']).execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropIndex('sessions_key_started_idx').execute();
  },
};

/**
 * Single sign-on (issue 15): where a user comes from (local: a password here; oidc: an OpenID
 * provider's subject; ldap: a directory entry's DN) and that identity, so a sign-on never lands
 * on a local user who happens to have the same name. One (source, external_id) is one user.
 */
const ssoUsers: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('users').addColumn('source', 'text', (col) => col.notNull().defaultTo('local')).execute();
    await db.schema.alterTable('users').addColumn('external_id', 'text').execute();
    await db.schema.createIndex('users_source_external_idx').on('users').columns(['source', 'external_id']).unique().execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropIndex('users_source_external_idx').execute();
    await db.schema.alterTable('users').dropColumn('external_id').execute();
    await db.schema.alterTable('users').dropColumn('source').execute();
  },
};

/**
 * Alerts that can be handled (issue 15): who acknowledged an open alert and when (it stops
 * repeating, still resolves), the key an alert is about (silences per key), and silences: per
 * repository or per key until a time, with who set them. At most one open alert per key (one
 * alert per cause): open duplicates left by older versions are resolved first, keeping the oldest.
 */
const alertHandling: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('alerts').addColumn('key_id', 'integer').execute();
    await db.schema.alterTable('alerts').addColumn('acknowledged_at', 'text').execute();
    await db.schema.alterTable('alerts').addColumn('acknowledged_by', 'text').execute();
    await sql`update alerts set resolved_at = opened_at where resolved_at is null and id > (select min(a.id) from alerts a where a.key = alerts.key and a.resolved_at is null)`.execute(db);
    await sql`create unique index alerts_one_open_per_key on alerts (key) where resolved_at is null`.execute(db);
    await withId(db, db.schema.createTable('alert_silences'))
      .addColumn('repository_id', 'integer', (col) => col.references('repositories.id').onDelete('cascade'))
      .addColumn('key_id', 'integer', (col) => col.references('ssh_keys.id').onDelete('cascade'))
      .addColumn('until', 'text', (col) => col.notNull())
      .addColumn('reason', 'text')
      .addColumn('created_by', 'text', (col) => col.notNull())
      .addColumn('created_at', 'text', (col) => col.notNull())
      // Ended early by someone: when and by whom (until is then that time).
      .addColumn('ended_by', 'text')
      .addCheckConstraint('alert_silences_target_check', sql`(repository_id is null) <> (key_id is null)`)
      .execute();
    await db.schema.createIndex('alert_silences_until_idx').on('alert_silences').column('until').execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable('alert_silences').execute();
    await sql`drop index alerts_one_open_per_key`.execute(db);
    for (const c of ['acknowledged_by', 'acknowledged_at', 'key_id']) await db.schema.alterTable('alerts').dropColumn(c).execute();
  },
};

/**
 * Searchable history (issue 15): per session, the borg methods borg serve carried out
 * (`methods`, a JSON array; null for sessions before this) and the kind of run they make
 * (`run_kind`, store/run-kind.ts, written when the session ends), so the ledger can be filtered by
 * kind in SQL and paged by (started_at, id). Indexes for the history's filters newest first: by
 * kind, by key alone (the key+repository index cannot serve a key without a repository in start
 * order), and the archive a transaction added (archive sightings by transaction). Ended sessions
 * recorded before this get their kind from their transactions and refusals (methods unknown).
 */
const historySearch: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('sessions').addColumn('methods', 'text').execute();
    await db.schema.alterTable('sessions').addColumn('run_kind', 'text').execute();
    await db.schema.createIndex('sessions_run_kind_started_idx').on('sessions').columns(['run_kind', 'started_at']).execute();
    // By key alone, newest first: 0016_key_last_used made sessions_key_started_idx already.
    await db.schema.createIndex('archive_sightings_transaction_idx').on('archive_sightings').columns(['repository_id', 'transaction_id']).execute();
    const k = db as unknown as Kysely<Database>;
    // In batches by id, so a large ledger is not read into memory at once.
    for (let after = 0; ; ) {
      const sessions = await k.selectFrom('sessions').select(['id', 'kind']).where('id', '>', after).where('result', '!=', 'open').orderBy('id').limit(1000).execute();
      if (sessions.length === 0) break;
      const ids = sessions.map((s) => s.id);
      const [txns, denials] = await Promise.all([
        k.selectFrom('transactions').select(['session_id', 'objects_put', 'objects_deleted', 'objects_overwritten', 'manifest_written']).where('session_id', 'in', ids).execute(),
        k.selectFrom('denials').select(['session_id', 'method', 'reason']).where('session_id', 'in', ids).execute(),
      ]);
      const byKind = new Map<string, number[]>();
      for (const s of sessions) {
        const kind = classifyRun({
          sessionKind: s.kind === 'retention' ? 'retention' : 'client',
          methods: null,
          transactions: txns.filter((t) => t.session_id === s.id).map((t) => ({ objectsPut: t.objects_put, objectsDeleted: t.objects_deleted, objectsOverwritten: t.objects_overwritten, manifestWritten: t.manifest_written === 1 })),
          denials: denials.filter((d) => d.session_id === s.id),
        });
        byKind.set(kind, [...(byKind.get(kind) ?? []), s.id]);
      }
      for (const [kind, kindIds] of byKind) await k.updateTable('sessions').set({ run_kind: kind }).where('id', 'in', kindIds).execute();
      after = ids.at(-1)!;
    }
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropIndex('archive_sightings_transaction_idx').execute();
    await db.schema.dropIndex('sessions_run_kind_started_idx').execute();
    await db.schema.alterTable('sessions').dropColumn('run_kind').execute();
    await db.schema.alterTable('sessions').dropColumn('methods').execute();
  },
};

/**
 * A version of the Keys page's facts (migration 0020): every write to keys, grants or repository
 * names bumps it, by triggers, from whichever process writes (`serve`, the CLI, the forced
 * command). The API keeps the key list it sent while the version stays, and reads only the
 * sessions started since for each key's last use, instead of every key, grant and key's newest
 * session on every request (bench/api.bench.mjs: a tenth of the server's CPU at 1,000 keys).
 * On PostgreSQL, plpgsql functions as 0006.
 */
const ACCESS_TRIGGERS: ReadonlyArray<readonly [name: string, when: string, table: string]> = [
  ['ssh_keys_insert', 'after insert on ssh_keys', 'ssh_keys'],
  ['ssh_keys_update', 'after update on ssh_keys', 'ssh_keys'],
  ['ssh_keys_delete', 'after delete on ssh_keys', 'ssh_keys'],
  ['grants_insert', 'after insert on grants', 'grants'],
  ['grants_update', 'after update on grants', 'grants'],
  ['grants_delete', 'after delete on grants', 'grants'],
  ['repositories_name', 'after update of name on repositories', 'repositories'],
  ['repositories_delete', 'after delete on repositories', 'repositories'],
];
const accessVersion: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    const int = isSqlite(db) ? 'integer' : 'bigint'; // PostgreSQL's integer is 32 bits
    await sql.raw(`create table access_version (id ${int} primary key check (id = 1), version ${int} not null)`).execute(db);
    await sql`insert into access_version (id, version) values (1, 0)`.execute(db);
    const bump = 'update access_version set version = version + 1 where id = 1;';
    for (const [name, when] of ACCESS_TRIGGERS) await createTrigger(db, `access_version_${name}`, when, bump);
  },
  async down(db: Kysely<unknown>): Promise<void> {
    for (const [name, , table] of ACCESS_TRIGGERS) await dropTrigger(db, `access_version_${name}`, table);
    await sql`drop table access_version`.execute(db);
  },
};

/**
 * Pull backups (issue 16): client hosts the server backs up by SSHing in (src/pull/types.ts
 * PullHost), their jobs, and each job's log (bounded: the last PULL_LOG_LINES lines per job).
 * A job keeps its host's id and name without a foreign key, so its history outlives the host
 * (ids are never reused); a host goes with its repository. `runner_*` say which process runs an
 * active job, so a job left behind by a process that died can be failed at the next start.
 * `schedule_from`: the time from which the host's schedule is next due (scheduled jobs move it).
 */
const pull: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await withId(db, db.schema.createTable('pull_hosts'))
      .addColumn('name', 'text', (col) => col.notNull().unique())
      .addColumn('address', 'text', (col) => col.notNull())
      .addColumn('port', 'integer', (col) => col.notNull())
      .addColumn('user_name', 'text', (col) => col.notNull())
      .addColumn('repository_id', 'integer', (col) => col.notNull().references('repositories.id').onDelete('cascade'))
      .addColumn('paths', 'text', (col) => col.notNull())
      .addColumn('excludes', 'text', (col) => col.notNull())
      .addColumn('compression', 'text', (col) => col.notNull())
      .addColumn('archive_template', 'text', (col) => col.notNull())
      .addColumn('schedule', 'text')
      .addColumn('schedule_from', 'text', (col) => col.notNull())
      .addColumn('timeout_seconds', 'integer', (col) => col.notNull())
      .addColumn('retries', 'integer', (col) => col.notNull())
      .addColumn('host_key_fingerprint', 'text')
      // The key the host last offered when it did not match (or none was pinned yet), for the
      // admin to compare before accepting it; never trusted by itself.
      .addColumn('offered_host_key', 'text')
      .addColumn('offered_host_key_at', 'text')
      .addColumn('created_at', 'text', (col) => col.notNull())
      .execute();
    await withId(db, db.schema.createTable('pull_jobs'))
      .addColumn('host_id', 'integer', (col) => col.notNull())
      .addColumn('host_name', 'text', (col) => col.notNull())
      .addColumn('trigger', 'text', (col) => col.notNull())
      .addColumn('state', 'text', (col) => col.notNull())
      .addColumn('archive_name', 'text')
      .addColumn('queued_at', 'text', (col) => col.notNull())
      .addColumn('not_before', 'text')
      .addColumn('started_at', 'text')
      .addColumn('ended_at', 'text')
      .addColumn('bytes', 'bigint', (col) => col.notNull().defaultTo(0))
      .addColumn('files', 'bigint', (col) => col.notNull().defaultTo(0))
      .addColumn('current_path', 'text')
      .addColumn('reason', 'text')
      .addColumn('attempt', 'integer', (col) => col.notNull().defaultTo(0))
      // 1: the failure is what only a changed or taken-over client causes (alert-rules.ts pull-failed).
      .addColumn('hostile', 'integer', (col) => col.notNull().defaultTo(0))
      .addColumn('runner_kind', 'text')
      .addColumn('runner_pid', 'integer')
      .addColumn('runner_host', 'text')
      .addCheckConstraint('pull_jobs_state_check', sql`state in ('queued', 'connecting', 'running', 'committing', 'done', 'failed')`)
      .addCheckConstraint('pull_jobs_trigger_check', sql`trigger in ('schedule', 'manual')`)
      .execute();
    await db.schema.createIndex('pull_jobs_state_idx').on('pull_jobs').columns(['state', 'id']).execute();
    await db.schema.createIndex('pull_jobs_host_idx').on('pull_jobs').columns(['host_id', 'id']).execute();
    await db.schema
      .createTable('pull_job_log')
      .addColumn('job_id', 'integer', (col) => col.notNull().references('pull_jobs.id').onDelete('cascade'))
      .addColumn('seq', 'integer', (col) => col.notNull())
      .addColumn('at', 'text', (col) => col.notNull())
      .addColumn('line', 'text', (col) => col.notNull())
      .addPrimaryKeyConstraint('pull_job_log_pk', ['job_id', 'seq'])
      .execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable('pull_job_log').execute();
    await db.schema.dropTable('pull_jobs').execute();
    await db.schema.dropTable('pull_hosts').execute();
  },
};

/**
 * Issue 17: whether a pull job gives the host's client the repository's chunk index (a borg cache
 * built by the server), so it uploads only new chunks; 0 = the client learns nothing of what the
 * repository holds. Existing hosts get it (1), as new ones do unless `host add --no-chunk-index`.
 */
const pullChunkIndex: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('pull_hosts').addColumn('send_chunk_index', 'integer', (col) => col.notNull().defaultTo(1)).execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('pull_hosts').dropColumn('send_chunk_index').execute();
  },
};

/**
 * Issue 18 point 4: each run of `borgkeep verify` (and the daily verify job) with what it read,
 * what it found, and how far it got: the newest run's `through_txn` (the last committed
 * transaction whose segments it read) and `through_stamp` (that segment file's identity, so a
 * rollback that reused the number is noticed) are where the next run starts.
 */
const verification: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await withId(db, db.schema.createTable('verifications'))
      .addColumn('repository_id', 'integer', (col) => col.notNull().references('repositories.id').onDelete('cascade'))
      .addColumn('at', 'text', (col) => col.notNull())
      .addColumn('actor', 'text', (col) => col.notNull())
      .addColumn('scope', 'text', (col) => col.notNull())
      .addColumn('verdict', 'text', (col) => col.notNull())
      .addColumn('from_txn', 'bigint')
      .addColumn('through_txn', 'bigint')
      .addColumn('through_stamp', 'text')
      .addColumn('objects_read', 'integer', (col) => col.notNull().defaultTo(0))
      .addColumn('bytes_read', 'integer', (col) => col.notNull().defaultTo(0))
      .addColumn('detail', 'text', (col) => col.notNull())
      .addColumn('findings', 'text', (col) => col.notNull().defaultTo('[]'))
      .addCheckConstraint('verifications_scope_check', sql`scope in ('changed', 'all')`)
      .addCheckConstraint('verifications_verdict_check', sql`verdict in ('intact', 'damaged', 'error')`)
      .execute();
    await db.schema.createIndex('verifications_repository_idx').on('verifications').columns(['repository_id', 'id']).execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable('verifications').execute();
  },
};

/**
 * Issue 17: whether the client host keeps borg's files cache of its jobs between them (in the pull
 * user's own cache folder), so an unchanged file is not read again. Off (0) unless the admin allows
 * it with `host add --keep-files-cache`.
 */
const pullFilesCache: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('pull_hosts').addColumn('keep_files_cache', 'integer', (col) => col.notNull().defaultTo(0)).execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('pull_hosts').dropColumn('keep_files_cache').execute();
  },
};

/**
 * Issue 18 point 5: archive checks. Per repository the rules each new archive must pass (none
 * until an admin sets them: "exists and is readable" needs no row), and per archive the server's
 * verdict with its findings (sentences), its figures and when it was checked; `gone_at` is when
 * the checks job last found the archive no longer in the manifest (its alert ends then). And (issue 18
 * point 2) per repository whether console viewers may browse its archives' names: off by default.
 */
const archiveChecks: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('archive_check_rules')
      .addColumn('repository_id', 'integer', (col) => col.primaryKey().references('repositories.id').onDelete('cascade'))
      .addColumn('required_paths', 'text', (col) => col.notNull().defaultTo('[]'))
      .addColumn('max_count_change', 'real')
      .addColumn('max_size_change', 'real')
      .addColumn('max_changed', 'real')
      .addColumn('max_new_data', 'real')
      .addColumn('updated_at', 'text', (col) => col.notNull())
      .addColumn('updated_by', 'text', (col) => col.notNull())
      .execute();
    await withId(db, db.schema.createTable('archive_checks'))
      .addColumn('repository_id', 'integer', (col) => col.notNull().references('repositories.id').onDelete('cascade'))
      .addColumn('archive_id', 'text', (col) => col.notNull())
      .addColumn('archive_name', 'text', (col) => col.notNull())
      .addColumn('archive_time', 'text', (col) => col.notNull())
      .addColumn('verdict', 'text', (col) => col.notNull())
      .addColumn('findings', 'text', (col) => col.notNull().defaultTo('[]'))
      .addColumn('notes', 'text', (col) => col.notNull().defaultTo('[]'))
      .addColumn('figures', 'text')
      .addColumn('checked_at', 'text', (col) => col.notNull())
      .addColumn('gone_at', 'text')
      .addCheckConstraint('archive_checks_verdict_check', sql`verdict in ('passed', 'failed', 'skipped')`)
      .execute();
    await db.schema.createIndex('archive_checks_archive_idx').unique().on('archive_checks').columns(['repository_id', 'archive_id', 'archive_name']).execute();
    // Issue 18 point 2: whether console viewers may browse a repository's archives (names only).
    await db.schema
      .createTable('browse_access')
      .addColumn('repository_id', 'integer', (col) => col.primaryKey().references('repositories.id').onDelete('cascade'))
      .addColumn('viewers_may_browse', 'integer', (col) => col.notNull().defaultTo(0))
      .addColumn('updated_at', 'text', (col) => col.notNull())
      .addColumn('updated_by', 'text', (col) => col.notNull())
      .execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable('browse_access').execute();
    await db.schema.dropTable('archive_checks').execute();
    await db.schema.dropTable('archive_check_rules').execute();
  },
};

/** All migrations by name; names sort in the order they run. */
/**
 * PostgreSQL only (issue 19): a version of the whole database that every statement writing any
 * table bumps, by statement triggers, from whichever process writes, with a notification. It is the store's change
 * mark there (StoreDeps.changeMark), what SQLite's data_version is on SQLite: the status list is
 * read again only when something changed. A later migration that creates a table on PostgreSQL
 * calls watchTable for it (database tests check that every table is watched).
 */
export const CHANGE_TABLE = 'store_changes';
/** The LISTEN/NOTIFY channel every write announces its table on. */
export const CHANGE_CHANNEL = 'borgkeep_changes';
const UNWATCHED = new Set([CHANGE_TABLE, 'kysely_migration', 'kysely_migration_lock']);

export async function watchTable(db: Kysely<unknown>, table: string): Promise<void> {
  await sql.raw(`create trigger ${table}_changes after insert or update or delete or truncate on ${table} for each statement execute function ${CHANGE_TABLE}_bump()`).execute(db);
}

const storeChanges: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    if (isSqlite(db)) return;
    await sql.raw(`create table ${CHANGE_TABLE} (id bigint primary key check (id = 1), version bigint not null)`).execute(db);
    await sql.raw(`insert into ${CHANGE_TABLE} (id, version) values (1, 0)`).execute(db);
    // Also a notification naming the table, for the live events of every process (LISTEN/NOTIFY:
    // postgres-store.ts watchChanges); PostgreSQL folds a transaction's identical ones into one.
    await sql
      .raw(`create function ${CHANGE_TABLE}_bump() returns trigger language plpgsql as $$ begin update ${CHANGE_TABLE} set version = version + 1 where id = 1; perform pg_notify('${CHANGE_CHANNEL}', TG_TABLE_NAME); return null; end $$`)
      .execute(db);
    const { rows } = await sql<{ name: string }>`select tablename as name from pg_tables where schemaname = current_schema() order by tablename`.execute(db);
    for (const { name } of rows) if (!UNWATCHED.has(name)) await watchTable(db, name);
  },
  async down(db: Kysely<unknown>): Promise<void> {
    if (isSqlite(db)) return;
    await sql.raw(`drop table ${CHANGE_TABLE}`).execute(db);
    await sql.raw(`drop function ${CHANGE_TABLE}_bump() cascade`).execute(db);
  },
};

/**
 * Failed SSH logins per source address, for gateways that share one database (issue 19): each
 * gateway's throttle adds its connections that did not log in and refuses an address that has
 * failed too often on any of them (gateway/shared-throttle.ts). Rows older than the throttle's
 * window are pruned; a connection that logged in after all takes its row back.
 */
const loginFailures: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await withId(db, db.schema.createTable('login_failures'))
      .addColumn('address', 'text', (col) => col.notNull())
      .addColumn('at', 'text', (col) => col.notNull())
      .execute();
    await db.schema.createIndex('login_failures_address_at_idx').on('login_failures').columns(['address', 'at']).execute();
    await db.schema.createIndex('login_failures_at_idx').on('login_failures').columns(['at']).execute();
    if (!isSqlite(db)) await watchTable(db, 'login_failures');
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable('login_failures').execute();
  },
};

/**
 * Leases (issue 19): which of the gateways sharing one database runs the scheduled jobs (alerts,
 * statistics, audits, retention, pull schedules), so that two do not both mail an alert or prune.
 * A holder renews its lease while it runs; one that died loses it when it expires.
 */
const leases: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('leases')
      .addColumn('name', 'text', (col) => col.primaryKey())
      .addColumn('holder', 'text', (col) => col.notNull())
      .addColumn('expires_at', 'text', (col) => col.notNull())
      .execute();
    if (!isSqlite(db)) await watchTable(db, 'leases');
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable('leases').execute();
  },
};

/**
 * Storage nodes (issue 19): the machines that hold repositories on their own disks and run the
 * guard next to them. A node registers itself (its address, SSH host key, the key it logs in to
 * other nodes with, its disk) and renews `heartbeat_at` while it runs; `repository_nodes` says
 * which node holds a repository (none: the data directory of the process that serves it, as on
 * one machine). `fleet_keys` are the keys gateways log in to nodes with.
 */
const nodes: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('nodes')
      .addColumn('name', 'text', (col) => col.primaryKey())
      .addColumn('address', 'text', (col) => col.notNull())
      .addColumn('host_key', 'text', (col) => col.notNull())
      .addColumn('client_key', 'text', (col) => col.notNull())
      .addColumn('borg_version', 'text')
      .addColumn('capacity_bytes', 'integer', (col) => col.notNull().defaultTo(0))
      .addColumn('free_bytes', 'integer', (col) => col.notNull().defaultTo(0))
      .addColumn('started_at', 'text', (col) => col.notNull())
      .addColumn('heartbeat_at', 'text', (col) => col.notNull())
      .addColumn('stopped_at', 'text')
      .addColumn('host', 'text', (col) => col.notNull())
      .addColumn('pid', 'integer', (col) => col.notNull())
      .execute();
    await db.schema
      .createTable('fleet_keys')
      .addColumn('public_key', 'text', (col) => col.primaryKey())
      .addColumn('name', 'text', (col) => col.notNull())
      .addColumn('seen_at', 'text', (col) => col.notNull())
      .execute();
    await db.schema
      .createTable('repository_nodes')
      .addColumn('repository_id', 'integer', (col) => col.primaryKey().references('repositories.id').onDelete('cascade'))
      .addColumn('node', 'text', (col) => col.notNull())
      .addColumn('moving_to', 'text')
      .execute();
    if (!isSqlite(db)) for (const t of ['nodes', 'fleet_keys', 'repository_nodes']) await watchTable(db, t);
  },
  async down(db: Kysely<unknown>): Promise<void> {
    for (const t of ['repository_nodes', 'fleet_keys', 'nodes']) await db.schema.dropTable(t).execute();
  },
};

export const MIGRATIONS: Readonly<Record<string, Migration>> = {
  '0001_initial': initial,
  '0002_repository_events': repositoryEvents,
  '0003_console_auth': consoleAuth,
  '0004_monitoring': monitoring,
  '0005_ledger_indexes': ledgerIndexes,
  '0006_repository_status_versions': repositoryStatusVersions,
  '0007_repository_event_kinds': repositoryEventKinds,
  '0009_archive_sightings': archiveSightings,
  '0010_backup_claims': backupClaims,
  '0011_transaction_older_deletes': transactionOlderDeletes,
  '0013_grant_archive_rules': grantArchiveRules,
  '0014_retention': retention,
  '0015_account': account,
  '0016_key_last_used': keyLastUsed,
  '0017_history_search': historySearch,
  '0018_alert_handling': alertHandling,
  '0019_sso_users': ssoUsers,
  '0020_access_version': accessVersion,
  '0021_pull': pull,
  '0022_pull_chunk_index': pullChunkIndex,
  '0023_verification': verification,
  '0024_pull_files_cache': pullFilesCache,
  '0025_archive_checks': archiveChecks,
  '0026_store_changes': storeChanges,
  '0027_login_failures': loginFailures,
  '0028_leases': leases,
  '0029_nodes': nodes,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => ({ ...MIGRATIONS }),
};
