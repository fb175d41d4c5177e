// A vitest reporter that writes each test file's run time, hooks and import included, to
// test-results/file-durations.json (file -> seconds). `npm test` adds it;
// scripts/test-durations.mjs turns it into the committed test/durations.json that
// test/sequencer.ts orders files by. (The JSON reporter's per-file times count only from the
// first test to the last, so a long beforeAll would not show.) It prints nothing.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

export default class DurationsReporter {
  onInit(vitest) {
    this.root = vitest.config.root;
  }

  onTestRunEnd(testModules) {
    const out = {};
    for (const m of testModules) {
      const d = m.diagnostic();
      // A file that failed to load ran nothing worth timing.
      if (!d || !Number.isFinite(d.duration)) continue;
      const ms = d.duration + (d.collectDuration ?? 0) + (d.setupDuration ?? 0) + (d.prepareDuration ?? 0) + (d.environmentSetupDuration ?? 0);
      out[relative(this.root, m.moduleId).split('\\').join('/')] = Math.round(ms / 100) / 10;
    }
    const dir = join(this.root, 'test-results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'file-durations.json'), `${JSON.stringify(out, null, 2)}\n`);
  }
}
