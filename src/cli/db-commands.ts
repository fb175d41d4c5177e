// `borgkeep db`: the control plane's database (issue 19). `db migrate` brings the configured
// database (SQLite, or PostgreSQL: store/database-location.ts) to this build's schema; `db copy`
// moves an installation from its SQLite file to an empty PostgreSQL database, every row.

import { existsSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { invalidInput } from '../errors.js';
import type { CliContext } from './cli-context.js';

export function registerDbCommands(program: Command, ctx: CliContext): void {
  const db = program.command('db').description("the database of keys, grants and the ledger: the data directory's SQLite file, or PostgreSQL");

  db.command('migrate')
    .description('bring the configured database to this version of borgkeep (serve and every command also do it when they open it)')
    .action(async () => {
      const [{ openStore }, { databaseUrlFor }, { redactDatabaseUrl }, { MIGRATIONS }] = await Promise.all([
        import('../store/database.js'),
        import('../store/database-location.js'),
        import('../store/postgres-dialect.js'),
        import('../store/migrations.js'),
      ]);
      const dataDir = ctx.getDataDir();
      const database = databaseUrlFor(dataDir);
      const store = await openStore({ dataDir, ...(database !== undefined && { database }) });
      await store.close();
      ctx.out.line(`${database === undefined ? store.paths.database : redactDatabaseUrl(database)}: the schema is current (${Object.keys(MIGRATIONS).length} migrations)`);
    });

  db.command('copy')
    .description("copy this data directory's SQLite database into an empty PostgreSQL database, every row, in one transaction; stop serve first")
    .requiredOption('--to <url>', 'the PostgreSQL database, e.g. postgres://borgkeep@db.example.org/borgkeep')
    .option('--from <sqlite:file>', "the SQLite database to copy, sqlite:DATA/borgkeep.db of a data directory (default: this data directory's)")
    .option('--json', 'print JSON')
    .action(async (opts: { to: string; from?: string; json?: boolean }) => {
      const [{ copySqliteToPostgres }, { databaseUrlFor }, { redactDatabaseUrl }] = await Promise.all([
        import('../store/database-copy.js'),
        import('../store/database-location.js'),
        import('../store/postgres-dialect.js'),
      ]);
      const dataDir = opts.from === undefined ? ctx.getDataDir() : sqliteDataDir(opts.from);
      // Checked like --database.
      const to = databaseUrlFor(dataDir, {}, opts.to, {})!;
      const copied = await copySqliteToPostgres({ dataDir, to, ...(!opts.json && { onTable: ({ table, rows }) => ctx.out.line(`${table}: ${rows} rows`) }) });
      const total = copied.reduce((n, t) => n + t.rows, 0);
      if (opts.json) {
        ctx.out.json({ to: redactDatabaseUrl(to), tables: copied, rows: total });
        return;
      }
      ctx.out.line(`copied ${total} rows of ${copied.length} tables to ${redactDatabaseUrl(to)}`);
      ctx.out.line(`next: start serve with --database ${redactDatabaseUrl(to)} (or "database" in the config file); the SQLite file stays as it was`);
    });
}

/** The data directory of `sqlite:DIR/borgkeep.db`: borgkeep's SQLite database is always that file of a data directory. */
function sqliteDataDir(from: string): string {
  const m = /^sqlite:(.+)$/.exec(from);
  if (!m || basename(m[1]!) !== 'borgkeep.db') throw invalidInput(`--from: is not sqlite:DATA/borgkeep.db, the SQLite database of a borgkeep data directory`);
  if (!existsSync(m[1]!)) throw invalidInput(`--from: there is no database ${m[1]}`);
  return dirname(resolve(m[1]!));
}
