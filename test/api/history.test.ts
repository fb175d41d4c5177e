// The searchable history over real HTTP (real SQLite): sessions and refusals filtered by
// repository, key, result, kind of run and time range; keyset pages that neither skip nor repeat
// while new sessions arrive; one session by its number; CSV and JSON downloads, with hostile
// names (formula-leading, quotes, newlines) made safe in the CSV.
import BetterSqlite3 from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { METHOD_COMMIT_COMPACT } from '../../src/store/run-kind.js';
import { ed25519Key } from '../support/temp-store.js';
import { startApi, type ApiClient, type ApiHarness } from './api-harness.js';

let h: ApiHarness;
let viewer: ApiClient;
let token: string;
const ids: Record<string, number> = {};
const HOSTILE_KEY = `=cmd|' /C calc'!A0`;
const HOSTILE_ARCHIVE = 'evil "archive",\n+SUM(1)';
let now: Date;
const ago = (hours: number) => new Date(now.getTime() - hours * 3600_000);

async function session(o: {
  name: string; key: { id: number; name: string } | null; keyName?: string; repo: { id: number; name: string }; at: Date; result?: 'ok' | 'error' | 'denied';
  methods?: string[]; put?: number; deleted?: number; manifest?: boolean; txnId?: number; denied?: { method: string; reason: string };
}) {
  const s = h.temp.store;
  const id = await s.startSession({ keyId: o.key?.id ?? null, keyName: o.keyName ?? o.key?.name ?? null, clientAddress: '192.0.2.7', startedAt: o.at, pid: null as unknown as number, host: null as unknown as string });
  await s.updateSession(id, { repositoryId: o.repo.id, repositoryName: o.repo.name, role: 'full', clientVersion: '1.2.8' });
  if (o.put !== undefined || o.deleted !== undefined || o.manifest) {
    await s.recordTransaction({ sessionId: id, borgTransactionId: o.txnId ?? null, objectsPut: o.put ?? 0, objectsOverwritten: 0, objectsDeleted: o.deleted ?? 0, objectsDeletedOlder: 0, manifestWritten: o.manifest ?? false, state: 'committed', startedAt: o.at, endedAt: o.at });
  }
  if (o.denied) await s.recordDenial({ sessionId: id, keyId: o.key?.id ?? null, repositoryId: o.repo.id, method: o.denied.method, reason: o.denied.reason, message: `refused: ${o.denied.method}`, at: o.at });
  await s.endSession(id, { endedAt: new Date(o.at.getTime() + 60_000), result: o.result ?? 'ok', detail: null, bytesIn: 1000, bytesOut: 10, methods: o.methods ?? ['open', 'get', 'list'] });
  ids[o.name] = id;
  return id;
}

const get = (path: string) => viewer.call('GET', `/api/v1${path}`);
const raw = (path: string) => fetch(`${h.url}/api/v1${path}`, { headers: { authorization: `Bearer ${token}` } });

/** RFC 4180 rows. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i++; } else if (c === '"') quoted = false; else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(cell); cell = ''; }
    else if (c === '\r' && text[i + 1] === '\n') { row.push(cell); rows.push(row); row = []; cell = ''; i++; }
    else cell += c;
  }
  return rows;
}

beforeAll(async () => {
  h = await startApi();
  now = h.temp.clock.now();
  viewer = await h.userClient('vic', 'viewer');
  token = (await viewer.call('POST', '/api/v1/tokens', { name: 'history' })).body.token;
  const s = h.temp.store;
  const web = await s.createRepository({ name: 'web', quotaBytes: null });
  const db = await s.createRepository({ name: 'db', quotaBytes: null });
  const laptop = (await s.addKey({ name: 'laptop', publicKey: ed25519Key() })).key;
  const server = (await s.addKey({ name: 'server', publicKey: ed25519Key() })).key;
  await session({ name: 'backup', key: laptop, repo: web, at: ago(72), methods: ['open', 'get', 'put', 'commit'], put: 120, manifest: true, txnId: 7 });
  await s.recordArchiveSightings(web.id, [{ archiveId: 'aa'.repeat(32), name: HOSTILE_ARCHIVE, clientTime: ago(72).toISOString(), firstSeenAt: ago(72), transactionId: 7, baseline: false }]);
  await session({ name: 'prune', key: server, repo: web, at: ago(48), methods: ['open', 'get', 'delete', 'put', 'commit'], deleted: 30, manifest: true, txnId: 9 });
  await session({ name: 'check', key: laptop, repo: db, at: ago(24), result: 'error', methods: ['open', 'check', 'get'] });
  await session({ name: 'refused', key: server, repo: db, at: ago(2), result: 'denied', methods: ['open', 'get'], denied: { method: 'put', reason: 'BK_DENY_ROLE' } });
  await session({ name: 'compact', key: server, repo: web, at: ago(1), methods: ['open', METHOD_COMMIT_COMPACT] });
  // A name no key may have today, as an older or imported ledger could hold it.
  await session({ name: 'hostile', key: null, keyName: HOSTILE_KEY, repo: db, at: ago(0.5) });
});
afterAll(() => h.close());

describe('the history API', () => {
  it('filters sessions by repository, key, result, kind of run and time range, and says what kind each was', async () => {
    const list = async (q: string) => ((await get(`/sessions?${q}`)).body.sessions as Array<{ id: number }>).map((x) => x.id);
    expect(await list('repository=web')).toEqual([ids.compact, ids.prune, ids.backup]);
    expect(await list('key=laptop')).toEqual([ids.check, ids.backup]);
    expect(await list('result=denied')).toEqual([ids.refused]);
    expect(await list('kind=backup')).toEqual([ids.refused, ids.backup]); // a refused backup is a backup that was refused
    expect(await list('kind=prune&key=server')).toEqual([ids.prune]);
    expect(await list('since=30h&until=90m')).toEqual([ids.refused, ids.check]);
    expect(await list(`since=${encodeURIComponent(ago(49).toISOString())}&repository=web&key=server`)).toEqual([ids.compact, ids.prune]);
    const all = (await get('/sessions')).body.sessions as Array<{ id: number; runKind: string; archives: Array<{ name: string }>; transactions: unknown[] }>;
    expect(Object.fromEntries(all.map((x) => [x.id, x.runKind]))).toEqual({
      [ids.backup!]: 'backup', [ids.prune!]: 'prune', [ids.check!]: 'check', [ids.refused!]: 'backup', [ids.compact!]: 'compact', [ids.hostile!]: 'list-extract',
    });
    expect(all.find((x) => x.id === ids.backup)!.archives).toEqual([{ name: HOSTILE_ARCHIVE, transactionId: 7 }]);
    // Refusals by key, kind (their session's) and time.
    const denials = (await get('/denials?key=server&kind=backup&since=3h')).body.denials as Array<{ sessionId: number; method: string }>;
    expect(denials.map((d) => [d.sessionId, d.method])).toEqual([[ids.refused, 'put']]);
    expect((await get('/denials?kind=prune')).body.denials).toEqual([]);
  });

  it('refuses a bad filter with one sentence, the CLI\'s', async () => {
    const cases: Array<[string, string]> = [
      ['/sessions?kind=restore', "'restore' is not a kind of run; use backup, prune, compact, list-extract, check, key-change, init, rollback, retention, pull or other"],
      ['/sessions?result=fine', "'fine' is not a session result; use open, ok, denied, error or aborted"],
      ['/sessions?since=yesterday', "'yesterday' is not a time; use an ISO-8601 date (2030-12-31), a date-time with a zone (2030-12-31T18:00Z) or a time ago (7d, 12h, 90m)"],
      ['/sessions?since=2d&until=3d', 'the start of the time range (since) must be before its end (until)'],
      ['/sessions?cursor=bm9wZQ', 'the cursor is not one this server handed out; start again without it'],
      ['/sessions/export?format=xml', "'xml' is not a format the export writes; use csv or json"],
      ['/denials?until=2030-12-31T18:00', "'2030-12-31T18:00' has no time zone; end it with Z for UTC or an offset such as +02:00"],
    ];
    for (const [path, message] of cases) {
      const r = await get(path);
      expect(r.status, path).toBe(400);
      expect(r.body, path).toEqual({ code: 'BK_ERR_INVALID_INPUT', message });
    }
    expect((await get('/sessions?key=nobody')).body).toEqual({ code: 'BK_ERR_NOT_FOUND', message: "no key named 'nobody'" });
  });

  it('pages with a cursor that neither skips nor repeats while new sessions arrive', async () => {
    const s = h.temp.store;
    const repo = await s.createRepository({ name: 'paged', quotaBytes: null });
    const base = ago(200);
    const original: number[] = [];
    // Pairs of sessions at the same instant: the id breaks the tie.
    for (let i = 0; i < 24; i++) original.push(await session({ name: `p${i}`, key: null, keyName: 'k', repo, at: new Date(base.getTime() + Math.floor(i / 2) * 1000) }));
    const expected = [...original].sort((a, b) => b - a);
    const seen: number[] = [];
    let cursor: string | null = null;
    let round = 0;
    do {
      const r = await get(`/sessions?repository=paged&limit=5${cursor ? `&cursor=${cursor}` : ''}`);
      seen.push(...(r.body.sessions as Array<{ id: number }>).map((x) => x.id));
      cursor = r.body.next;
      // Arrivals between pages: a newer one, and one at the very instant of a row already shown.
      await session({ name: `new${round}`, key: null, keyName: 'k', repo, at: new Date() });
      await session({ name: `tie${round}`, key: null, keyName: 'k', repo, at: new Date(base.getTime() + 11_000 - round * 1000) });
      round++;
    } while (cursor !== null);
    // Rows that arrived at an instant not yet reached may appear; none already passed, and none twice.
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.filter((id) => original.includes(id))).toEqual(expected);
  });

  it('gives one session by the number the audit names, with its storage details', async () => {
    const r = await get(`/sessions/${ids.backup}`);
    expect(r.status).toBe(200);
    expect(r.body.session).toMatchObject({ id: ids.backup, runKind: 'backup', keyName: 'laptop', repositoryName: 'web', bytesIn: 1000, transactions: [{ borgTransactionId: 7, objectsPut: 120, manifestWritten: true }] });
    expect(r.body.session.pid).toBeUndefined();
    expect((await get('/sessions/999999')).body).toEqual({ code: 'BK_ERR_NOT_FOUND', message: 'there is no session 999999' });
  });

  it('exports the matching sessions as CSV, formula-leading and quoted cells made safe', async () => {
    const r = await raw('/sessions/export?repository=db');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    expect(r.headers.get('content-disposition')).toMatch(/^attachment; filename="borgkeep-sessions-\d{4}-\d{2}-\d{2}\.csv"$/);
    const rows = parseCsv(await r.text());
    expect(rows[0]!.slice(0, 7)).toEqual(['session', 'started', 'ended', 'kind', 'result', 'repository', 'key']);
    expect(rows.slice(1).map((row) => Number(row[0]))).toEqual([ids.hostile, ids.refused, ids.check]);
    const hostile = rows[1]!;
    expect(hostile[6]).toBe(`'${HOSTILE_KEY}`); // a spreadsheet shows the text, never runs it
    expect(rows[2]![3]).toBe('backup');
    expect(rows[3]![3]).toBe('check');
    const web = parseCsv(await (await raw('/sessions/export?repository=web&kind=backup')).text());
    expect(web[1]![17]).toBe(HOSTILE_ARCHIVE); // quotes, comma and newline kept inside one cell
    expect((await (await raw('/sessions/export?repository=web&kind=backup')).text())).toContain(`"evil ""archive"",\n+SUM(1)"`);
  });

  it('exports every matching row as JSON across many pages (streamed), and refusals as CSV', async () => {
    // 1,234 sessions written straight into the database: more than two of the export's pages.
    const repo = await h.temp.store.createRepository({ name: 'bulk', quotaBytes: null });
    const sqlite = new BetterSqlite3(h.temp.store.paths.database);
    const insert = sqlite.prepare(`insert into sessions (key_name, repository_id, repository_name, started_at, ended_at, result, kind, run_kind) values ('bulk-key', ?, 'bulk', ?, ?, 'ok', 'client', 'list-extract')`);
    sqlite.transaction(() => {
      for (let i = 0; i < 1234; i++) insert.run(repo.id, new Date(ago(500).getTime() + i * 1000).toISOString(), new Date(ago(500).getTime() + i * 1000 + 500).toISOString());
    })();
    sqlite.close();
    const r = await raw('/sessions/export?repository=bulk&format=json');
    expect(r.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const rows = (await r.json()) as Array<{ id: number; runKind: string; repositoryName: string }>;
    expect(rows).toHaveLength(1234);
    expect(new Set(rows.map((x) => x.id)).size).toBe(1234);
    expect(rows.every((x, i) => i === 0 || x.id < rows[i - 1]!.id)).toBe(true);
    expect(rows[0]).toMatchObject({ runKind: 'list-extract', repositoryName: 'bulk' });
    const denials = parseCsv(await (await raw('/denials/export?key=server')).text());
    expect(denials).toEqual([
      ['refusal', 'at', 'session', 'repository', 'key', 'method', 'reason', 'message'],
      [expect.any(String), ago(2).toISOString(), String(ids.refused), 'db', 'server', 'put', 'BK_DENY_ROLE', 'refused: put'],
    ]);
    expect(await (await raw('/denials/export?kind=check&format=json')).json()).toEqual([]);
  });

  it('lists and exports transactions by their session\'s key and kind of run, and by state', async () => {
    const list = async (q: string) => (await get(`/transactions?${q}`)).body.transactions as Array<{ borgTransactionId: number; runKind: string; keyName: string; objectsPut: number }>;
    expect((await list('key=laptop')).map((t) => [t.borgTransactionId, t.runKind, t.objectsPut])).toEqual([[7, 'backup', 120]]);
    expect((await list('kind=prune')).map((t) => [t.borgTransactionId, t.keyName])).toEqual([[9, 'server']]);
    expect(await list('state=rolled_back')).toEqual([]);
    expect((await list('repository=web&until=60h')).map((t) => t.borgTransactionId)).toEqual([7]);
    const csv = parseCsv(await (await raw('/transactions/export?repository=web')).text());
    expect(csv.map((row) => [row[1], row[2], row[5], row[7]])).toEqual([
      ['borg transaction', 'state', 'kind', 'key'],
      ['9', 'committed', 'prune', 'server'],
      ['7', 'committed', 'backup', 'laptop'],
    ]);
    expect((await get('/transactions?result=ok')).body).toEqual({ code: 'BK_ERR_INVALID_INPUT', message: "the query has an unknown parameter 'result'" });
  });
});
