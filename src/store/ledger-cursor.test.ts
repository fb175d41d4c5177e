import { describe, expect, it } from 'vitest';
import { decodeCursor, encodeCursor } from './ledger-store.js';
import { parseHistoryFilter, parsePastTime } from './history-filter.js';

describe('ledger cursors', () => {
  it('round-trip (time, id) and are opaque base64url', () => {
    const c = encodeCursor('2026-12-06T08:00:00.000Z', 123456);
    expect(c).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeCursor(c)).toEqual({ at: '2026-12-06T08:00:00.000Z', id: 123456 });
  });

  it('refuse anything this server did not hand out, with one sentence', () => {
    for (const bad of ['', 'garbage', Buffer.from('2026-12-06|1').toString('base64url'), Buffer.from("2026-12-06T08:00:00.000Z|1' or 1=1").toString('base64url')]) {
      expect(() => decodeCursor(bad)).toThrow('the cursor is not one this server handed out; start again without it');
    }
  });
});

describe('history filters', () => {
  const now = new Date('2026-12-06T12:00:00Z');
  it('reads times ago, dates and date-times with a zone', () => {
    expect(parsePastTime('90m', now)).toEqual(new Date('2026-12-06T10:30:00Z'));
    expect(parsePastTime('7d', now)).toEqual(new Date('2026-11-29T12:00:00Z'));
    expect(parsePastTime('2026-12-01', now)).toEqual(new Date('2026-12-01T00:00:00Z'));
    expect(parsePastTime('2026-12-01T08:00+02:00', now)).toEqual(new Date('2026-12-01T06:00:00Z'));
    expect(() => parsePastTime('2026-02-30', now)).toThrow("'2026-02-30' is not a valid date or time");
  });
  it('checks result, kind and the order of the range', () => {
    expect(parseHistoryFilter({ result: 'denied', kind: 'list-extract', since: '2d', until: '1d' }, now)).toEqual({
      result: 'denied', runKind: 'list-extract', since: new Date('2026-12-04T12:00:00Z'), until: new Date('2026-12-05T12:00:00Z'),
    });
    expect(() => parseHistoryFilter({ kind: 'Backup' }, now)).toThrow("'Backup' is not a kind of run");
    expect(() => parseHistoryFilter({ since: '1d', until: '1d' }, now)).toThrow('the start of the time range (since) must be before its end (until)');
  });
});
