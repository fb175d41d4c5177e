// Reads the .cpuprofile files `node --cpu-prof` wrote into a directory and sums self time per
// function (name + file:line), so a benchmark can print where the guard's CPU goes.

import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

import { ROOT } from './common.mjs';

export function summariseProfile(dir, top = 20) {
  const self = new Map();
  let totalUs = 0;
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    const p = JSON.parse(readFileSync(join(dir, file), 'utf8'));
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    // timeDeltas[i] is the time before sample i; attribute it to that sample's node.
    for (let i = 0; i < p.samples.length; i++) {
      const node = byId.get(p.samples[i]);
      const dt = p.timeDeltas[i] ?? 0;
      totalUs += dt;
      const cf = node.callFrame;
      const where = cf.url ? `${relative(ROOT, cf.url.replace(/^file:\/\//, ''))}:${cf.lineNumber + 1}` : '';
      const name = `${cf.functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
      self.set(name, (self.get(name) ?? 0) + dt);
    }
  }
  const rows = [...self]
    .map(([name, us]) => ({ name, selfMs: us / 1000, selfPct: (100 * us) / Math.max(totalUs, 1) }))
    .sort((a, b) => b.selfMs - a.selfMs)
    .slice(0, top);
  return { totalMs: totalUs / 1000, top: rows };
}
