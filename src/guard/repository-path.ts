// Maps the path a borg client asks to open to the name of a repository (fact sheet A.8).
// Clients write ssh://host/./NAME (sent as "/./NAME"), host:NAME, host:~/NAME or
// ssh://host/~/NAME. Anything else — absolute paths, "..", nested folders, other users'
// homes — names no repository, and the guard answers it exactly as a missing repository.

const NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/;
const PREFIXES = ['/./', '/~/', '~/', './'];

/** The repository name the client means, or null when the path cannot name one. */
export function repositoryNameFromPath(path: Buffer): string | null {
  if (path.length === 0 || path.length > 1024) return null;
  let p = path.toString('utf8');
  if (Buffer.byteLength(p, 'utf8') !== path.length || p.includes('\0')) return null;
  for (const prefix of PREFIXES) {
    if (p.startsWith(prefix)) {
      p = p.slice(prefix.length);
      break;
    }
  }
  while (p.endsWith('/')) p = p.slice(0, -1);
  if (!NAME.test(p) || p === '.' || p === '..') return null;
  return p;
}
