import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';

import { MsgMap, encode, type MsgValue } from '../rpc/msgpack.js';
import { ManifestError, parseManifest, type Manifest } from '../repository/manifest.js';
import type { Role } from '../store/types.js';
import { FUTURE_TOLERANCE_MS, PAST_TOLERANCE_MS, archiveEntriesOf, judgeManifestChange, parseArchiveTime, type ManifestChangeInput } from './manifest-change.js';

/** [name, id seed, time]; the id is sha256(seed). */
type A = [name: string, id: string, time?: string];
const T0 = '2026-11-23T10:00:00.000000';
const SERVER = new Date('2026-11-23T10:05:00Z');
const idFor = (s: string) => createHash('sha256').update(s).digest();
const hex = (s: string) => idFor(s).toString('hex');

interface Opts {
  timestamp?: string;
  config?: MsgValue;
  itemKeys?: string[];
  version?: number;
  sort?: boolean;
  /** What the TAM check said (the unit tests do not sign; parseManifest says 'missing'). */
  tam?: Manifest['tam'];
}

/** A manifest as borg writes it (archives sorted by name unless told otherwise). */
function manifest(archives: A[], o: Opts = {}): Manifest {
  const list = o.sort === false ? archives : [...archives].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const entries = list.map(([name, id, time]): [string, MsgMap] => [name, MsgMap.of([['id', idFor(id)], ['time', Buffer.from(time ?? T0)]])]);
  const fields: Array<[string, MsgValue]> = [
    ['archives', MsgMap.of(entries)],
    ['config', o.config ?? MsgMap.of([])],
    ['item_keys', (o.itemKeys ?? ['acl_access', 'chunks', 'mode', 'path']).map((k) => Buffer.from(k))],
    ['timestamp', Buffer.from(o.timestamp ?? T0)],
    ['version', o.version ?? 1],
  ];
  return { ...parseManifest(encode(MsgMap.of(fields)), null, false), tam: o.tam ?? 'ok' };
}

let tick = 0;
/** Each call a later manifest timestamp, as borg writes them. */
const ts = () => `2026-11-23T10:00:00.${String(++tick).padStart(6, '0')}`;
const m = (archives: A[], o: Opts = {}) => manifest(archives, { timestamp: ts(), ...o });

function judge(previous: Manifest | null | 'unknown', next: Manifest, role: Role | null, extra: Partial<ManifestChangeInput> = {}) {
  return judgeManifestChange({ previous, next, role, serverTime: SERVER, ...extra });
}
const kinds = (j: ReturnType<typeof judge>) => j.findings.filter((f) => f.suspicious).map((f) => f.kind);
const notices = (j: ReturnType<typeof judge>) => j.findings.filter((f) => !f.suspicious).map((f) => f.kind);

const BASE: A[] = [['mon', 'mon'], ['tue', 'tue'], ['wed', 'wed']];

describe('an ordinary history is clean', () => {
  test('a backup by append adds one archive: nothing suspicious, it appeared', () => {
    const j = judge(m(BASE), m([...BASE, ['thu', 'thu']]), 'append');
    expect(j.suspicious).toBe(false);
    expect(j.findings).toEqual([]);
    expect(j.change.added).toEqual(['thu']);
    expect(j.change.appeared).toEqual([{ name: 'thu', id: hex('thu'), time: T0 }]);
  });

  test('the first manifest of a new repository: every archive added; a baseline: none added, all appeared', () => {
    const first = judge(null, m(BASE), 'full');
    expect(first.change.added).toEqual(['mon', 'tue', 'wed']);
    expect(first.suspicious).toBe(false);
    const base = judge('unknown', m(BASE), 'prune');
    expect(base.change.added).toEqual([]);
    expect(base.change.appeared.map((a) => a.name)).toEqual(['mon', 'tue', 'wed']);
    expect(base.suspicious).toBe(false);
  });

  test('a prune by prune or full removes archives: a notice, not suspicious', () => {
    for (const role of ['prune', 'full'] as const) {
      const j = judge(m(BASE), m([BASE[2]]), role);
      expect(j.suspicious).toBe(false);
      expect(j.change.removed).toEqual(['mon', 'tue']);
      expect(j.findings).toEqual([{ kind: 'removed', suspicious: false, message: `the ${role} session removed mon, tue` }]);
    }
  });

  test('checkpoints: replaced by the next, promoted to their archive, removed: no finding for append', () => {
    const base = m(BASE);
    const a = m([...BASE, ['thu.checkpoint', 'c1']]);
    const b = m([...BASE, ['thu.checkpoint', 'c2']]);
    const c = m([...BASE, ['thu', 'thu']]);
    expect(judge(base, a, 'append').findings).toEqual([]);
    expect(judge(a, b, 'append').findings).toEqual([]);
    expect(judge(a, b, 'append').change.replaced).toEqual(['thu.checkpoint']);
    const done = judge(b, c, 'append');
    expect(done.findings).toEqual([]);
    expect(done.change.promoted).toEqual(['thu.checkpoint']);
    // An old checkpoint time (a long backup's start) is not judged by the time window.
    expect(judge(m(BASE), m([...BASE, ['thu.checkpoint', 'c3', '2026-11-01T00:00:00.000000']]), 'append').findings).toEqual([]);
  });

  test('a new item key (a newer borg) is a notice', () => {
    const j = judge(m(BASE), m(BASE, { itemKeys: ['acl_access', 'chunks', 'mode', 'path', 'xattrs'] }), 'append');
    expect(j.suspicious).toBe(false);
    expect(j.change.itemKeys).toEqual({ added: ['xattrs'], removed: [] });
    expect(notices(j)).toEqual(['item-keys']);
  });
});

describe('times', () => {
  test('an existing archive given another time (same name and id) is suspicious for every role', () => {
    for (const role of ['append', 'prune', 'full', null] as const) {
      const j = judge(m(BASE), m([['mon', 'mon'], ['tue', 'tue'], ['wed', 'wed', '2015-01-01T00:00:00.000000']]), role);
      expect(j.change.retimed).toEqual([{ name: 'wed', id: hex('wed'), from: T0, to: '2015-01-01T00:00:00.000000' }]);
      expect(j.change.added).toEqual([]);
      expect(j.change.appeared).toEqual([]);
      expect(kinds(j)).toEqual(['retimed']);
      expect(j.findings[0].message).toContain('changed the time of archive wed from 2026-11-23T10:00:00.000000 to 2015-01-01T00:00:00.000000');
    }
  });

  test('a new archive more than a day ahead of the server, or more than 7 days behind: suspicious; inside the window: not', () => {
    const at = (ms: number) => new Date(SERVER.getTime() + ms).toISOString().replace('Z', '000');
    const cases: Array<[number, boolean]> = [
      [FUTURE_TOLERANCE_MS + 60_000, true],
      [FUTURE_TOLERANCE_MS - 60_000, false],
      [-PAST_TOLERANCE_MS + 60_000, false],
      [-PAST_TOLERANCE_MS - 60_000, true],
      [0, false],
    ];
    for (const [offset, bad] of cases) {
      const j = judge(m(BASE), m([...BASE, ['new', `n${offset}`, at(offset)]]), 'append');
      expect(kinds(j), String(offset)).toEqual(bad ? ['archive-time'] : []);
    }
    const unreadable = judge(m(BASE), m([...BASE, ['new', 'x', 'yesterday']]), 'full');
    expect(unreadable.change.timeOutOfRange).toEqual([{ name: 'new', id: hex('x'), time: 'yesterday', why: 'unreadable' }]);
    // No server time: the window is not applied.
    expect(judge(m(BASE), m([...BASE, ['new', 'y', '2015-01-01T00:00:00.000000']]), 'append', { serverTime: null }).suspicious).toBe(false);
  });

  test('the manifest timestamp going back or standing still is suspicious; forward is not', () => {
    const a = manifest(BASE, { timestamp: '2026-11-23T10:00:00.000002' });
    expect(kinds(judge(a, manifest(BASE, { timestamp: '2026-11-23T10:00:00.000001' }), 'full'))).toEqual(['timestamp']);
    expect(kinds(judge(a, manifest(BASE, { timestamp: '2026-11-23T10:00:00.000002' }), 'full'))).toEqual(['timestamp']);
    const fwd = judge(a, manifest(BASE, { timestamp: '2026-11-23T10:00:00.000003' }), 'full');
    expect(fwd.change.timestamp).toEqual({ from: '2026-11-23T10:00:00.000002', to: '2026-11-23T10:00:00.000003', increased: true });
    expect(fwd.suspicious).toBe(false);
  });

  test('parseArchiveTime reads borg\'s naive UTC times with microseconds', () => {
    expect(parseArchiveTime('2026-11-23T10:00:00.123456')).toBe(Date.parse('2026-11-23T10:00:00.123Z'));
    expect(parseArchiveTime('2026-11-23T10:00:00')).toBe(Date.parse('2026-11-23T10:00:00Z'));
    expect(parseArchiveTime('2026-11-23T10:00:00+01:00')).toBe(Date.parse('2026-11-23T09:00:00Z'));
    expect(parseArchiveTime('2026-13-23T10:00:00')).toBeNull();
    expect(parseArchiveTime('')).toBeNull();
  });
});

describe('names and ids', () => {
  test('a manifest-only rename (same id, new name) is suspicious for prune, append and unattributed; a notice for full', () => {
    const before = m(BASE);
    const after = m([['mon', 'mon'], ['tue-renamed', 'tue'], ['wed', 'wed']]);
    for (const role of ['prune', 'append', null] as const) {
      const j = judge(before, after, role);
      expect(j.change.renamed).toEqual([{ id: hex('tue'), from: 'tue', to: 'tue-renamed' }]);
      expect(kinds(j)).toContain('renamed');
      // Its old name is not also reported as a removal, its new name not as an addition.
      expect(kinds(j)).not.toContain('removed');
      expect(kinds(j)).not.toContain('added');
    }
    const j = judge(before, after, 'full');
    expect(j.suspicious).toBe(false);
    expect(notices(j)).toEqual(['renamed']);
    // Names by (name, id) stay as before: the old name removed, the new one added.
    expect(j.change.added).toEqual(['tue-renamed']);
    expect(j.change.removed).toEqual(['tue']);
  });

  test('a rename that also moves the time is retimed as well', () => {
    const j = judge(m(BASE), m([['mon', 'mon'], ['tue', 'tue'], ['zzz', 'wed', '2015-01-01T00:00:00.000000']]), 'full');
    expect(kinds(j)).toEqual(['retimed']);
    expect(notices(j)).toEqual(['renamed']);
  });

  test('an entry pointing at an archive already listed is suspicious for every role, wherever either sits in the list', () => {
    const many: A[] = Array.from({ length: 50 }, (_, i) => [`a${String(i).padStart(2, '0')}`, `a${i}`]);
    for (const role of ['prune', 'append', 'full'] as const) {
      for (const target of ['a00', 'a25', 'a49']) {
        const j = judge(m(many), m([...many, [`copy-of-${target}`, `a${Number(target.slice(1))}`]]), role);
        expect(j.change.pointsAtListed).toEqual([{ name: `copy-of-${target}`, id: hex(`a${Number(target.slice(1))}`), listedAs: target }]);
        expect(kinds(j)).toContain('points-at-listed');
      }
    }
    // Two new entries with one id.
    const twice = judge(m(BASE), m([...BASE, ['x1', 'new'], ['x2', 'new']]), 'append');
    expect(twice.change.pointsAtListed).toEqual([{ name: 'x2', id: hex('new'), listedAs: 'x1' }]);
  });

  test('an id that an earlier manifest listed coming back: suspicious, a notice for full', () => {
    const listedBefore = new Map([[hex('old'), 'old']]);
    const j = judge(m(BASE), m([...BASE, ['old-again', 'old', '2015-01-01T00:00:00.000000']]), 'append', { listedBefore });
    expect(j.change.relisted).toEqual([{ name: 'old-again', id: hex('old'), listedAs: 'old' }]);
    // Its time was judged when it was first seen.
    expect(kinds(j)).toEqual(['relisted']);
    expect(judge(m(BASE), m([...BASE, ['old', 'old']]), 'full', { listedBefore }).suspicious).toBe(false);
  });

  test('prune may only remove: an addition or a replacement by prune is suspicious', () => {
    expect(kinds(judge(m(BASE), m([...BASE, ['thu', 'thu']]), 'prune'))).toEqual(['added']);
    const replaced = judge(m(BASE), m([['mon', 'mon'], ['tue', 'other'], ['wed', 'wed']]), 'prune');
    expect(replaced.change.replaced).toEqual(['tue']);
    expect(kinds(replaced)).toEqual(['added']);
    expect(replaced.findings[0].message).toBe('a session with the prune role added tue; it may only remove archives');
  });

  test('removals and replacements by append, read and unattributed writers stay suspicious', () => {
    for (const role of ['append', 'read', null] as const) {
      const j = judge(m(BASE), m([['mon', 'mon'], ['tue', 'forged']]), role);
      expect(kinds(j)).toContain('removed');
      const who = role ? `a session with the ${role} role` : 'an unattributed writer';
      expect(j.findings.map((f) => f.message)).toContain(`${who} removed wed and replaced tue`);
    }
  });

  test('reordered lists (not sorted by name) diff as sets', () => {
    const j = judge(m(BASE, { sort: false }), m([BASE[2], ['new', 'new'], BASE[0], BASE[1]], { sort: false }), 'append');
    expect(j.change.added).toEqual(['new']);
    expect(j.change.removed).toEqual([]);
    expect(j.suspicious).toBe(false);
  });

  test('a name listed twice is refused, as borg would hide one of them', () => {
    const dup = manifest([...BASE, ['mon', 'other']], { sort: false, timestamp: ts() });
    expect(() => judge(m(BASE), dup, 'append')).toThrow(ManifestError);
    expect(() => judge(null, dup, 'append')).toThrow('the manifest lists an archive name twice');
    // The same name in another msgpack form (str8 instead of fixstr), borg's dict still one key.
    const base = m(BASE);
    const plain = encode(MsgMap.of([['archives', MsgMap.of([...BASE, ['XXXX', 'x']].map(([n, id]): [string, MsgMap] => [n, MsgMap.of([['id', idFor(id)], ['time', Buffer.from(T0)]])]))], ['timestamp', Buffer.from(ts())], ['version', 1]]));
    const at = plain.indexOf(Buffer.from([0xa4, 0x58, 0x58, 0x58, 0x58]));
    Buffer.from([0xd9, 0x03, 0x74, 0x75, 0x65]).copy(plain, at); // "tue"
    const sneaky = { ...parseManifest(plain, null, false), tam: 'ok' as const };
    expect(() => judge(base, sneaky, 'append')).toThrow('the manifest lists an archive name twice');
  });

  test('random histories: added/removed/replaced match the obvious set diff', () => {
    let seed = 11;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    let list: A[] = [];
    let prev: Manifest | null = null;
    for (let step = 0; step < 300; step++) {
      const next = list.filter(() => rand(10) !== 0).map((a): A => (rand(15) === 0 ? [a[0], `${a[1]}x${step}`] : a));
      for (let k = rand(3); k > 0; k--) next.push([`n${step}-${k}`, `n${step}-${k}`]);
      const man = m(next, { sort: rand(4) !== 0 });
      const j = judge(prev, man, 'full');
      const old = new Map(list.map(([n, id]) => [n, id]));
      const now = new Map(next.map(([n, id]) => [n, id]));
      const sort = (xs: string[]) => [...xs].sort();
      expect(sort(j.change.added)).toEqual(sort(next.filter(([n]) => !old.has(n)).map(([n]) => n)));
      expect(sort(j.change.removed)).toEqual(sort(list.filter(([n]) => !now.has(n)).map(([n]) => n)));
      expect(sort(j.change.replaced)).toEqual(sort(next.filter(([n, id]) => old.has(n) && old.get(n) !== id).map(([n]) => n)));
      expect(j.change.renamed).toEqual([]);
      expect(j.change.pointsAtListed).toEqual([]);
      expect(archiveEntriesOf(man).map((e) => e.name).sort()).toEqual(sort(next.map(([n]) => n)));
      prev = man;
      list = next;
    }
  });
});

describe('the manifest itself', () => {
  const flags = (mandatory: string[]) => MsgMap.of([['feature_flags', MsgMap.of([['write', MsgMap.of([['mandatory', mandatory.map((f) => Buffer.from(f))]])]])]]);

  test('a mandatory feature flag written by append, prune or unattributed is suspicious; by full a notice', () => {
    for (const role of ['append', 'prune', 'read', null] as const) {
      const j = judge(m(BASE), m(BASE, { config: flags(['no-such-feature']) }), role);
      expect(j.change.configChanged).toBe(true);
      expect(j.change.mandatoryFeaturesAdded).toEqual(['write:no-such-feature']);
      expect(kinds(j)).toEqual(['config']);
      expect(j.findings[0].message).toContain('mandatory feature flag write:no-such-feature added, which make borg refuse to work with the repository');
    }
    const j = judge(m(BASE), m(BASE, { config: flags(['x']) }), 'full');
    expect(j.suspicious).toBe(false);
    expect(notices(j)).toEqual(['config']);
    // Any other config change counts too.
    expect(kinds(judge(m(BASE), m(BASE, { config: MsgMap.of([['anything', 1]]) }), 'append'))).toEqual(['config']);
    expect(judge(m(BASE), m(BASE), 'append').change.configChanged).toBe(false);
  });

  test('a version change is suspicious unless by full; item keys removed likewise', () => {
    expect(kinds(judge(m(BASE), m(BASE, { version: 2 }), 'append'))).toEqual(['version']);
    expect(judge(m(BASE), m(BASE, { version: 2 }), 'full').change.version).toEqual({ from: 1, to: 2 });
    expect(judge(m(BASE), m(BASE, { version: 2 }), 'full').suspicious).toBe(false);
    const fewer = judge(m(BASE), m(BASE, { itemKeys: ['path'] }), 'prune');
    expect(fewer.change.itemKeys).toEqual({ added: [], removed: ['acl_access', 'chunks', 'mode'] });
    expect(kinds(fewer)).toEqual(['item-keys']);
  });

  test('the TAM: missing or invalid is suspicious, also on a baseline', () => {
    const noTam = m(BASE, { tam: 'missing' });
    expect(kinds(judge('unknown', noTam, 'full'))).toEqual(['tam']);
    expect(judge(null, { ...noTam, tam: 'ok' }, 'full').suspicious).toBe(false);
    expect(judge(null, { ...noTam, tam: 'unchecked' }, 'full').suspicious).toBe(false);
    expect(judge(null, { ...noTam, tam: 'invalid' }, 'full').findings[0].message).toBe('the manifest authentication (TAM) does not verify');
  });
});

describe('what only the live guard knows (issue 14)', () => {
  const own = (...names: string[]) => (id: string) => names.some((n) => hex(n) === id);

  test('append: an archive it adds must be one whose archive object it wrote; each refusal names the rule', () => {
    expect(judge(m(BASE), m([...BASE, ['thu', 'thu']]), 'append', { writtenByWriter: own('thu') }).suspicious).toBe(false);
    const j = judge(m(BASE), m([...BASE, ['thu', 'stolen']]), 'append', { writtenByWriter: own('thu') });
    expect(kinds(j)).toEqual(['not-own']);
    expect(j.findings[0]).toMatchObject({ rule: 'append adds only', refusal: "an append key may not add archive 'thu': its archive object was not written in this session" });
    // Without the writer's puts (the audit) nothing is said about it.
    expect(judge(m(BASE), m([...BASE, ['thu', 'stolen']]), 'append').suspicious).toBe(false);
  });

  test('append: its own checkpoints come and go; another session\'s checkpoint may not be removed', () => {
    const withCp: A[] = [...BASE, ['thu.checkpoint', 'cp1']];
    expect(judge(m(withCp), m([...BASE, ['thu', 'thu']]), 'append', { writtenByWriter: own('cp1', 'thu') }).suspicious).toBe(false);
    expect(judge(m(withCp), m([...BASE, ['thu.checkpoint', 'cp2']]), 'append', { writtenByWriter: own('cp1', 'cp2') }).suspicious).toBe(false);
    const j = judge(m(withCp), m(BASE), 'append', { writtenByWriter: own() });
    expect(kinds(j)).toEqual(['removed']);
    expect(j.findings[0].refusal).toBe("an append key may not remove archive 'thu.checkpoint': only checkpoints it wrote itself");
  });

  test('a removal by append says what may not be done and by which rule', () => {
    const j = judge(m(BASE), m([BASE[1], BASE[2]]), 'append');
    expect(j.findings[0]).toMatchObject({ kind: 'removed', suspicious: true, rule: 'append adds only', refusal: "an append key may not remove archive 'mon'" });
  });

  const day = (d: number) => new Date(SERVER.getTime() - d * 86_400_000);
  const seenDaysAgo = (days: Record<string, number>) => (a: { name: string }) => (a.name in days ? day(days[a.name]) : null);
  const rule = (r: Partial<{ minAgeSeconds: number; keepLast: number; prefix: string }>) => ({ minAgeSeconds: null, keepLast: null, prefix: null, ...r });
  // Each archive's time the day it was first seen, as a real backup's is.
  const at = (d: number) => day(d).toISOString().replace('Z', '000');
  const LIST: A[] = [['h-1', 'h-1', at(40)], ['h-2', 'h-2', at(35)], ['h-3', 'h-3', at(31)], ['h-4', 'h-4', at(2)], ['o-1', 'o-1', at(50)], ['h-4.checkpoint', 'cp', at(2)]];
  const seen = seenDaysAgo({ 'h-1': 40, 'h-2': 35, 'h-3': 31, 'h-4': 2, 'o-1': 50 });

  test('prune --min-age: by the server\'s first sighting, not the client\'s time; never seen counts as now; checkpoints exempt', () => {
    const retention = { rule: rule({ minAgeSeconds: 30 * 86_400 }), firstSeen: seen, now: SERVER };
    expect(judge(m(LIST), m(LIST.filter(([n]) => !['h-1', 'h-2', 'h-4.checkpoint'].includes(n))), 'prune', { retention }).suspicious).toBe(false);
    const young = judge(m(LIST), m(LIST.filter(([n]) => n !== 'h-4')), 'prune', { retention });
    expect(kinds(young)).toEqual(['retention']);
    expect(young.findings[0].refusal).toMatch(/^a prune key may not remove archive 'h-4': the server first saw it less than 30d ago/);
    expect(young.findings[0].rule).toBe('--min-age 30d');
    const never = judge(m([...LIST, ['new', 'new']]), m(LIST), 'prune', { retention });
    expect(never.findings[0].refusal).toContain("'new' never seen by the server before");
  });

  test('prune --keep-last per --prefix: the N newest by first sighting stay; outside the prefix nothing goes', () => {
    const retention = { rule: rule({ keepLast: 2, prefix: 'h-' }), firstSeen: seen, now: SERVER };
    // Newest h- by sighting: h-4 (2 days), h-3 (31 days).
    expect(judge(m(LIST), m(LIST.filter(([n]) => !['h-1', 'h-2'].includes(n))), 'prune', { retention }).suspicious).toBe(false);
    const j = judge(m(LIST), m(LIST.filter(([n]) => n !== 'h-3')), 'prune', { retention });
    expect(j.findings[0]).toMatchObject({ kind: 'retention', rule: '--keep-last 2 --prefix h-', refusal: "a prune key may not remove archive 'h-3': it is among the 2 newest named 'h-...', which the grant keeps" });
    const outside = judge(m(LIST), m(LIST.filter(([n]) => n !== 'o-1')), 'prune', { retention });
    expect(outside.findings[0].refusal).toBe("a prune key may not remove archive 'o-1': its grant covers only archives named 'h-...'");
    // Sighted together (a first look): the client's time breaks the tie.
    const tie = { rule: rule({ keepLast: 1 }), firstSeen: () => day(40), now: SERVER };
    const timed: A[] = [['a', 'a', '2026-11-01T00:00:00.000000'], ['b', 'b', '2026-11-02T00:00:00.000000']];
    expect(judge(m(timed), m([timed[1]]), 'prune', { retention: tie }).suspicious).toBe(false);
    expect(judge(m(timed), m([timed[0]]), 'prune', { retention: tie }).suspicious).toBe(true);
  });

  test("prune --keep-last counts archives of one second once, as borg prune's --keep-last (= --keep-secondly) does", () => {
    // Two backups started within one second (seen at one look): borg keeps the newer of them and
    // the next second's archive, and removes the older of the pair; the grant allows exactly that.
    const tie = { rule: rule({ keepLast: 2, prefix: 'x-' }), firstSeen: () => day(10), now: SERVER };
    const timed: A[] = [
      ['x-1', 'x-1', '2026-11-01T10:00:01.100000'],
      ['x-2', 'x-2', '2026-11-01T10:00:02.200000'],
      ['x-3', 'x-3', '2026-11-01T10:00:03.100000'],
      ['x-4', 'x-4', '2026-11-01T10:00:03.900000'],
    ];
    expect(judge(m(timed), m([timed[1], timed[3]]), 'prune', { retention: tie }).suspicious).toBe(false);
    // Still never the newest of a second, nor the next second's archive.
    const j = judge(m(timed), m([timed[2], timed[3]]), 'prune', { retention: tie });
    expect(j.findings[0].refusal).toBe("a prune key may not remove archive 'x-2': it is among the 2 newest named 'x-...', which the grant keeps");
    expect(judge(m(timed), m([timed[1], timed[2]]), 'prune', { retention: tie }).suspicious).toBe(true);
    // An archive whose time cannot be read is a second of its own: it never joins another's.
    const odd: A[] = [['x-1', 'x-1', '2026-11-01T10:00:01.100000'], ['x-2', 'x-2', 'not a time'], ['x-3', 'x-3', '2026-11-01T10:00:03.100000']];
    expect(judge(m(odd), m([odd[2]]), 'prune', { retention: tie }).suspicious).toBe(true);
  });

  test('a key that requires no TAM: a missing TAM is a notice', () => {
    expect(kinds(judge(m(BASE), m(BASE, { tam: 'missing' }), 'append'))).toEqual(['tam']);
    expect(notices(judge(m(BASE), m(BASE, { tam: 'missing' }), 'append', { tamRequired: false }))).toEqual(['tam']);
  });

  test('archiveEntriesOf reads entries in place as archiveFromEntry decodes them, odd entries included', () => {
    const entries: Array<[string, MsgValue]> = [
      ['plain', MsgMap.of([['id', idFor('1')], ['time', Buffer.from(T0)]])],
      ['twice', MsgMap.of([['id', idFor('2')], ['id', idFor('3')], ['time', Buffer.from(T0)], ['time', Buffer.from('x')]])],
      ['extra', MsgMap.of([['time', Buffer.from(T0)], ['comment', Buffer.from('c')], ['id', idFor('4')]])],
      ['no-time', MsgMap.of([['id', idFor('5')], ['time', 7]])],
    ];
    const mm = { ...parseManifest(encode(MsgMap.of([['archives', MsgMap.of(entries)], ['timestamp', Buffer.from(T0)], ['version', 1]])), null, false) };
    expect(archiveEntriesOf(mm)).toEqual([
      { name: 'plain', id: hex('1'), time: T0 },
      { name: 'twice', id: hex('2'), time: T0 },
      { name: 'extra', id: hex('4'), time: T0 },
      { name: 'no-time', id: hex('5'), time: '' },
    ]);
  });
});
