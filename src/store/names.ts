// The naming rule for repositories, keys and users. Names appear in client URLs
// (ssh://borg@host/./NAME), in command lines and in log lines, so they are kept to characters
// that need no quoting anywhere and cannot be mistaken for an option or a hidden file.

import { invalidInput } from '../errors.js';

export const NAME_MAX_LENGTH = 64;
const NAME_CHARS = /^[A-Za-z0-9._-]+$/;

export type NamedThing = 'repository' | 'key' | 'user' | 'token' | 'alert channel' | 'host';

export function checkName(thing: NamedThing, name: string): string {
  const a = /^[aeiou]/.test(thing) ? 'an' : 'a';
  if (name.length === 0) throw invalidInput(`${a} ${thing} name cannot be empty`);
  const shown = name.length > 80 ? `${name.slice(0, 80)}…` : name;
  if (name.length > NAME_MAX_LENGTH) {
    throw invalidInput(`the ${thing} name '${shown}' is longer than ${NAME_MAX_LENGTH} characters`);
  }
  if (!NAME_CHARS.test(name)) {
    throw invalidInput(`the ${thing} name '${shown}' may only contain letters, digits, '.', '_' and '-'`);
  }
  if (name.startsWith('.') || name.startsWith('-')) {
    throw invalidInput(`${a} ${thing} name cannot start with '.' or '-' ('${shown}')`);
  }
  // KEY on the command line is a name or an id; an all-digit name would be ambiguous.
  if (thing === 'key' && /^[0-9]+$/.test(name)) {
    throw invalidInput(`a key name cannot be only digits ('${shown}'), since a number names a key by its id`);
  }
  return name;
}
