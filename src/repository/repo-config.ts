// A borg repository's `config` file (fact sheet B.2): Python ConfigParser syntax, section
// [repository], no interpolation; the repokey's base64 is wrapped over continuation lines that
// start with whitespace. Parsing only: never writes.

export class RepoFormatError extends Error {}

export interface RepoConfig {
  readonly version: number;
  readonly segmentsPerDir: number;
  readonly maxSegmentSize: number;
  readonly appendOnly: boolean;
  /** The repository id: 32 bytes, lowercase hex in the file. */
  readonly id: Buffer;
  /** The encrypted key blob (base64, whitespace removed) of repokey/authenticated modes, else null. */
  readonly key: string | null;
}

/**
 * A value of the file as an error message shows it: one line (a value may continue over several),
 * no control characters, not too long. The file may come from anyone who could write the repository.
 */
function shown(text: string): string {
  const line = text.replace(/[\x00-\x1f\x7f]+/g, ' ');
  return line.length > 60 ? `${line.slice(0, 60)}...` : line;
}

const SI: Record<string, number> = { '': 1, K: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15 };

function parseSize(text: string, name: string): number {
  const m = /^([0-9]+)\s*([KMGTP]?)$/i.exec(text.trim());
  if (!m) throw new RepoFormatError(`config: ${name} '${shown(text)}' is not a size`);
  return Number(m[1]) * SI[m[2].toUpperCase()];
}

function parseBool(text: string, name: string): boolean {
  const t = text.trim().toLowerCase();
  if (['1', 'yes', 'true', 'on'].includes(t)) return true;
  if (['0', 'no', 'false', 'off'].includes(t)) return false;
  throw new RepoFormatError(`config: ${name} '${shown(text)}' is not a boolean`);
}

/** The options of one section, keys lowercased (as ConfigParser does), continuation lines joined with "\n". */
export function parseIni(text: string): Map<string, Map<string, string>> {
  const sections = new Map<string, Map<string, string>>();
  let section: Map<string, string> | null = null;
  let lastKey: string | null = null;
  for (const raw of text.split(/\r?\n/)) {
    if (/^\s*([#;].*)?$/.test(raw)) {
      lastKey = null;
      continue;
    }
    if (/^\s/.test(raw)) {
      if (!section || lastKey === null) throw new RepoFormatError('config: a continuation line has no option before it');
      section.set(lastKey, `${section.get(lastKey)}\n${raw.trim()}`);
      continue;
    }
    const head = /^\[([^\]]+)\]\s*$/.exec(raw);
    if (head) {
      section = new Map();
      sections.set(head[1], section);
      lastKey = null;
      continue;
    }
    const kv = /^([^=:]+?)\s*[=:]\s*(.*)$/.exec(raw);
    if (!kv || !section) throw new RepoFormatError(`config: cannot read the line '${shown(raw)}'`);
    lastKey = kv[1].toLowerCase();
    section.set(lastKey, kv[2].trim());
  }
  return sections;
}

export function parseRepoConfig(text: string): RepoConfig {
  const repo = parseIni(text).get('repository');
  if (!repo) throw new RepoFormatError('config: there is no [repository] section');
  const get = (name: string): string => {
    const v = repo.get(name);
    if (v === undefined) throw new RepoFormatError(`config: ${name} is missing`);
    return v;
  };
  const version = Number(get('version'));
  if (version !== 1) throw new RepoFormatError(`config: repository version ${shown(get('version'))} is not borg 1.x's version 1`);
  const idHex = get('id').trim();
  if (!/^[0-9a-f]{64}$/i.test(idHex)) throw new RepoFormatError('config: id is not 64 hex digits');
  const segmentsPerDir = Number(repo.get('segments_per_dir') ?? '1000');
  if (!Number.isSafeInteger(segmentsPerDir) || segmentsPerDir < 1) throw new RepoFormatError('config: segments_per_dir is not a positive number');
  const key = repo.get('key');
  return {
    version,
    segmentsPerDir,
    maxSegmentSize: parseSize(repo.get('max_segment_size') ?? '524288000', 'max_segment_size'),
    appendOnly: parseBool(repo.get('append_only') ?? '0', 'append_only'),
    id: Buffer.from(idHex, 'hex'),
    key: key === undefined || key.trim() === '' ? null : key.replace(/\s+/g, ''),
  };
}
