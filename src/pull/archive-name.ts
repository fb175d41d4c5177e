// The archive name of a pull job, from its host's template: {host} is the host's name, {now} the
// job's start in UTC as 'YYYY-MM-DDTHH:MM:SS'. The name is decided by the server when the job
// starts and is the only one the proxy lets the client write, so a template that could make a
// name borg refuses (or reads differently) is refused when the host is added, never at 3 a.m.
//
// Must never expand anything but {host} and {now}: borg itself expands {...} placeholders in
// archive names, so a name that still holds a brace would not be the name the proxy expects.

import { invalidInput } from '../errors.js';

export const DEFAULT_ARCHIVE_TEMPLATE = '{host}-{now}';
export const ARCHIVE_NAME_MAX_LENGTH = 200;
const PLACEHOLDER = /\{([^{}]*)\}/g;

/** UTC to the second, without zone letter: 2026-12-06T14:05:09 (borg's own {now:%Y-%m-%dT%H:%M:%S} form). */
export function archiveTime(at: Date): string {
  return at.toISOString().slice(0, 19);
}

function expand(template: string, host: string, now: string): string {
  return template.replace(PLACEHOLDER, (_, name: string) => (name === 'host' ? host : now));
}

/**
 * Checks a template; returns it trimmed. Refused, with one sentence: unknown placeholders, stray
 * braces, no {now} (every job after the first would reuse the name and borg would refuse it),
 * and any name borg refuses or treats specially ('/', '::', control characters, a checkpoint
 * name, leading or trailing spaces).
 */
export function checkArchiveTemplate(template: string): string {
  const shown = template.length > 80 ? `${template.slice(0, 80)}…` : template;
  const t = template.trim();
  if (t === '') throw invalidInput('the archive template cannot be empty; use e.g. {host}-{now}');
  for (const [, name] of t.matchAll(PLACEHOLDER)) {
    if (name !== 'host' && name !== 'now') throw invalidInput(`the archive template '${shown}' has the unknown placeholder {${name}}; use {host} and {now}`);
  }
  if (/[{}]/.test(t.replace(PLACEHOLDER, ''))) throw invalidInput(`the archive template '${shown}' has a brace that is not part of {host} or {now}`);
  if (!t.includes('{now}')) throw invalidInput(`the archive template '${shown}' must contain {now}, or every job after the first would reuse one archive name`);
  // A long host name and the time, as a real name would be; the checks below hold for every host.
  checkArchiveName(expand(t, 'h'.repeat(64), archiveTime(new Date(0))), `the archive template '${shown}'`);
  return t;
}

/** Refuses a finished name borg refuses or would read as something else; `where` names the template or name. */
function checkArchiveName(name: string, where: string): void {
  const problem = archiveNameProblem(name);
  if (problem) throw invalidInput(`an archive name cannot ${problem} (${where})`);
}

function archiveNameProblem(name: string): string | null {
  if (name.includes('/')) return "contain '/', which borg refuses";
  if (name.includes('::')) return "contain '::', which borg reads as the start of an archive name";
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(name)) return 'contain a control character';
  if (name !== name.trim()) return 'start or end with a space';
  if (/\.checkpoint(\.[0-9]+)?$/.test(name)) return "end like borg's checkpoint archives (.checkpoint)";
  if (name.length > ARCHIVE_NAME_MAX_LENGTH) return `be longer than ${ARCHIVE_NAME_MAX_LENGTH} characters`;
  return null;
}

/** The archive name of a job of `host` started at `at`, from a template checked by checkArchiveTemplate. */
export function archiveName(template: string, host: string, at: Date): string {
  const name = expand(checkArchiveTemplate(template), host, archiveTime(at));
  checkArchiveName(name, `the archive name '${name}'`);
  return name;
}
