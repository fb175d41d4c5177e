// Where things live inside one installation's data directory. The only place that knows the
// layout, so the guard, the CLI and the audit agree on where a repository's files are.

import { join, resolve } from 'node:path';

export interface DataDirPaths {
  root: string;
  database: string;
  /** Parent of every repository directory; names under it reveal neither owner nor name. */
  repos: string;
  /** Deleted repositories are moved here, never destroyed by borgkeep. */
  trash: string;
  repository(dirName: string): string;
}

export function dataDirPaths(dataDir: string): DataDirPaths {
  const root = resolve(dataDir);
  const repos = join(root, 'repos');
  return {
    root,
    database: join(root, 'borgkeep.db'),
    repos,
    trash: join(root, 'trash'),
    repository: (dirName) => join(repos, dirName),
  };
}
