// Heap snapshots of a child Node process started with `--heapsnapshot-signal=SIGUSR2`: take one
// (V8 collects garbage first, so the snapshot holds only live objects) and summarise it by
// constructor, to tell a leak (live objects that grow from one idle moment to the next) from
// memory the process merely keeps (RSS that grows while the live heap does not).

import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Signals `child` to write a snapshot into `dir` (its working directory) and resolves with the
 * file's path once the file has stopped growing. Writing blocks the child's event loop.
 */
export async function takeHeapSnapshot(child, dir, timeoutMs = 300_000) {
  const before = new Set(readdirSync(dir).filter((f) => f.endsWith('.heapsnapshot')));
  child.kill('SIGUSR2');
  const deadline = Date.now() + timeoutMs;
  let file = null;
  let lastSize = -1;
  while (Date.now() < deadline) {
    await sleep(1000);
    file ??= readdirSync(dir).find((f) => f.endsWith('.heapsnapshot') && !before.has(f)) ?? null;
    if (!file) continue;
    const size = statSync(join(dir, file)).size;
    if (size > 0 && size === lastSize) {
      // Node writes the closing bracket last; a parsable file is a finished one.
      try {
        JSON.parse(readFileSync(join(dir, file), 'utf8'));
        return join(dir, file);
      } catch {
        /* still being written */
      }
    }
    lastSize = size;
  }
  throw new Error(`no heap snapshot from pid ${child.pid} within ${timeoutMs / 1000} s`);
}

/**
 * Summarises a snapshot: the live heap's total self size, its object count, and per group
 * (`type:constructor name` for objects and closures, the type otherwise) the count and bytes.
 */
export function summariseHeapSnapshot(path, { remove = false } = {}) {
  const snap = JSON.parse(readFileSync(path, 'utf8'));
  if (remove) rmSync(path, { force: true });
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const iType = fields.indexOf('type');
  const iName = fields.indexOf('name');
  const iSize = fields.indexOf('self_size');
  const { nodes, strings } = snap;
  const groups = new Map();
  let total = 0;
  for (let at = 0; at < nodes.length; at += width) {
    const type = types[nodes[at + iType]];
    const size = nodes[at + iSize];
    total += size;
    const key = type === 'object' || type === 'closure' ? `${type}:${strings[nodes[at + iName]]}` : type;
    const g = groups.get(key) ?? { count: 0, bytes: 0 };
    g.count++;
    g.bytes += size;
    groups.set(key, g);
  }
  return { liveMb: total / 1024 / 1024, objects: nodes.length / width, groups };
}

/** The groups whose count grew most from `a` to `b`: [{ group, from, to, bytesFrom, bytesTo }]. */
export function heapGrowth(a, b, top = 10) {
  const rows = [];
  for (const [group, g] of b.groups) {
    const was = a.groups.get(group) ?? { count: 0, bytes: 0 };
    rows.push({ group, from: was.count, to: g.count, bytesFrom: was.bytes, bytesTo: g.bytes });
  }
  return rows.sort((x, y) => y.bytesTo - y.bytesFrom - (x.bytesTo - x.bytesFrom)).slice(0, top);
}
