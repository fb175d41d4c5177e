import { describe, expect, it } from 'vitest';
import { csvCell, csvLine, exportChunks } from './history-export.js';

describe('CSV cells', () => {
  it('quotes commas, quotes and line breaks (RFC 4180)', () => {
    expect(csvCell('plain')).toBe('plain');
    expect(csvCell('a,b')).toBe('"a,b"');
    expect(csvCell('say "hi"')).toBe('"say ""hi"""');
    expect(csvCell('two\nlines')).toBe('"two\nlines"');
    expect(csvCell(' padded ')).toBe('" padded "');
    expect(csvCell(null)).toBe('');
    expect(csvCell(42)).toBe('42');
  });

  it('makes formula-leading text inert with a leading quote, also when it needs quoting', () => {
    expect(csvCell(`=cmd|' /C calc'!A0`)).toBe(`'=cmd|' /C calc'!A0`);
    expect(csvCell('+SUM(A1)')).toBe(`'+SUM(A1)`);
    expect(csvCell('-2+3')).toBe(`'-2+3`);
    expect(csvCell('@now')).toBe(`'@now`);
    expect(csvCell('\tx')).toBe(`'\tx`);
    expect(csvCell('=HYPERLINK("http://x","y")')).toBe(`"'=HYPERLINK(""http://x"",""y"")"`);
    // Numbers are the ledger's own, never text: left as they are.
    expect(csvCell(-1)).toBe('-1');
    expect(csvLine(['a', 1, null])).toBe('a,1,\r\n');
  });
});

describe('export chunks', () => {
  const pages = (...sizes: number[]) => {
    let n = 0;
    const all = sizes.map((size) => Array.from({ length: size }, () => ++n));
    return async (cursor: string | undefined) => {
      const i = cursor === undefined ? 0 : Number(cursor);
      return { items: all[i]!, next: i + 1 < all.length ? String(i + 1) : null };
    };
  };
  const collect = async (g: AsyncGenerator<string>) => {
    let text = '';
    for await (const c of g) text += c;
    return text;
  };
  const csv = { header: ['n'], cells: (x: number) => [x] };

  it('joins pages into one JSON array, also when a page is empty or there is none', async () => {
    expect(JSON.parse(await collect(exportChunks('json', pages(2, 3, 1), csv, (x) => ({ x }))))).toEqual([1, 2, 3, 4, 5, 6].map((x) => ({ x })));
    expect(JSON.parse(await collect(exportChunks('json', pages(0), csv, (x) => x)))).toEqual([]);
  });

  it('writes the CSV header once, then every page', async () => {
    expect(await collect(exportChunks('csv', pages(2, 1), csv, (x) => x))).toBe('n\r\n1\r\n2\r\n3\r\n');
  });
});
