// The JSON config file of `borgkeep serve` (--config FILE, BORGKEEP_CONFIG, else DATA/borgkeep.json
// when it exists), read as one object; `borgkeep pull run` reads it too, for the settings a job it
// runs in its own process needs (pullBorgBinaries).
//
// Must never interpret the settings: serve-config.ts does, in one schema.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { BorgkeepError } from '../errors.js';

/** The config file's JSON: `explicit` must exist; `fallback` (DATA/borgkeep.json) is read when it does. */
export function readConfigFile(explicit: string | null, fallback: string): Record<string, unknown> {
  const path = explicit ?? (existsSync(fallback) ? fallback : null);
  if (path === null) return {};
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new BorgkeepError('BK_ERR_INVALID_INPUT', `cannot read the config file ${path}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'there is no such file' : (error as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new BorgkeepError('BK_ERR_INVALID_INPUT', `the config file ${path} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new BorgkeepError('BK_ERR_INVALID_INPUT', `the config file ${path} must hold one JSON object`);
  return value as Record<string, unknown>;
}

/** The config file serve reads by default on this data directory (no --config flag: BORGKEEP_CONFIG, else DATA/borgkeep.json). */
export function readDefaultConfigFile(dataDir: string, env: NodeJS.ProcessEnv): Record<string, unknown> {
  return readConfigFile(env.BORGKEEP_CONFIG ?? null, join(dataDir, 'borgkeep.json'));
}
