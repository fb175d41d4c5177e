// Server sentences shown in the console (an audit's verdict, a session's detail, an alert) carry
// exact times in ISO 8601; the console shows them as it shows every time, relative with the exact
// time on hover (web/src/format.tsx TextWithTimes), never as raw ISO.
import { createElement } from 'react';
import { renderToStaticMarkup } from 'react-dom/server';
import { expect, it } from 'vitest';
import { TextWithTimes } from './format';

it('shows every ISO time in a sentence as a <time> with its exact value, and the rest as it is', () => {
  const text = "archive 'mon' first seen 2026-12-06T10:52:28Z, after the audit of 2026-12-05T03:30:00.123Z (clean)";
  const html = renderToStaticMarkup(createElement(TextWithTimes, { text }));
  expect(html).toContain("archive &#x27;mon&#x27; first seen <time dateTime=\"2026-12-06T10:52:28Z\"");
  expect(html).toContain('<time dateTime="2026-12-05T03:30:00.123Z"');
  expect(html).toContain('(clean)');
  expect(html.replace(/<time[^>]*>/g, '')).not.toMatch(/\d{4}-\d{2}-\d{2}T\d{2}:/);
});

it('leaves a sentence without times as it is', () => {
  expect(renderToStaticMarkup(createElement(TextWithTimes, { text: 'compaction allowed' }))).toBe('compaction allowed');
});
