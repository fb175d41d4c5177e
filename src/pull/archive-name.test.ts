import { describe, expect, it } from 'vitest';

import { archiveName, archiveTime, checkArchiveTemplate } from './archive-name.js';

const refusal = (f: () => unknown) => {
  try {
    f();
    return 'accepted';
  } catch (e) {
    return (e as Error).message;
  }
};

describe('archive names of pull jobs', () => {
  it('expands {host} and {now} (UTC, to the second)', () => {
    const at = new Date('2026-12-06T14:05:09.734Z');
    expect(archiveTime(at)).toBe('2026-12-06T14:05:09');
    expect(archiveName('{host}-{now}', 'web1', at)).toBe('web1-2026-12-06T14:05:09');
    expect(archiveName('  pull {now} of {host}  ', 'web1', at)).toBe('pull 2026-12-06T14:05:09 of web1');
  });

  it('refuses templates that would make names borg refuses or reads differently', () => {
    expect(refusal(() => checkArchiveTemplate(''))).toBe('the archive template cannot be empty; use e.g. {host}-{now}');
    expect(refusal(() => checkArchiveTemplate('{host}/{now}'))).toBe("an archive name cannot contain '/', which borg refuses (the archive template '{host}/{now}')");
    expect(refusal(() => checkArchiveTemplate('a::{now}'))).toBe("an archive name cannot contain '::', which borg reads as the start of an archive name (the archive template 'a::{now}')");
    expect(refusal(() => checkArchiveTemplate('{host}-{hostname}-{now}'))).toBe("the archive template '{host}-{hostname}-{now}' has the unknown placeholder {hostname}; use {host} and {now}");
    expect(refusal(() => checkArchiveTemplate('{host-{now}'))).toBe("the archive template '{host-{now}' has a brace that is not part of {host} or {now}");
    expect(refusal(() => checkArchiveTemplate('{host}'))).toBe("the archive template '{host}' must contain {now}, or every job after the first would reuse one archive name");
    expect(refusal(() => checkArchiveTemplate('{now}.checkpoint'))).toBe("an archive name cannot end like borg's checkpoint archives (.checkpoint) (the archive template '{now}.checkpoint')");
    expect(refusal(() => checkArchiveTemplate('a\t{now}'))).toMatch(/^an archive name cannot contain a control character/);
    expect(refusal(() => checkArchiveTemplate(`${'x'.repeat(150)}{host}{now}`))).toMatch(/^an archive name cannot be longer than 200 characters/);
    expect(checkArchiveTemplate(' {host}-{now} ')).toBe('{host}-{now}');
  });
});
