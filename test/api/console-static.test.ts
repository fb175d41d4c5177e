// The console's files as the API server serves them (src/api/console-static.ts), from a folder
// like the one Vite writes: hashed assets cached for a year, index.html revalidated and carrying
// the CSP, the page for the app's own paths, 404 for missing assets and every /api path, gzip.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { createApiServer } from '../../src/api/api-server.js';
import { createPasswordHasher } from '../../src/api/auth/passwords.js';
import { openTempStore } from '../support/temp-store.js';
import { TEST_ARGON2 } from './api-harness.js';

const dir = mkdtempSync(join(tmpdir(), 'borgkeep-web-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function serve(consoleDir: string | null) {
  const temp = await openTempStore();
  const server = createApiServer({ store: temp.store, passwords: await createPasswordHasher(TEST_ARGON2), consoleDir });
  const { url } = await server.listen('127.0.0.1', 0);
  return { url, close: async () => (await server.close(), await temp.cleanup()) };
}

describe('the console at /', () => {
  it('serves the built files with cache headers, the page for app paths, and 404s for the rest', async () => {
    mkdirSync(join(dir, 'assets'));
    const page = '<!doctype html><title>borgkeep</title><script type="module" src="/assets/index-abc123.js"></script>';
    const script = `console.log(${JSON.stringify('x'.repeat(5000))});`;
    writeFileSync(join(dir, 'index.html'), page);
    writeFileSync(join(dir, 'assets', 'index-abc123.js'), script);
    const { url, close } = await serve(dir);
    try {
      const root = await fetch(`${url}/`);
      expect(root.status).toBe(200);
      expect(root.headers.get('content-type')).toMatch(/^text\/html/);
      expect(root.headers.get('cache-control')).toBe('no-cache');
      expect(root.headers.get('content-security-policy')).toContain("script-src 'self'");
      expect(await root.text()).toBe(page);

      const deep = await fetch(`${url}/repositories/web`);
      expect(deep.status).toBe(200);
      expect(await deep.text()).toBe(page);

      const asset = await fetch(`${url}/assets/index-abc123.js`, { headers: { 'accept-encoding': 'gzip' } });
      expect(asset.status).toBe(200);
      expect(asset.headers.get('content-type')).toMatch(/^text\/javascript/);
      expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      expect(await asset.text()).toBe(script); // fetch undoes the gzip
      const raw = await new Promise<Buffer>((resolve, reject) => {
        import('node:http').then(({ get }) =>
          get(`${url}/assets/index-abc123.js`, { headers: { 'accept-encoding': 'gzip' } }, (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks)));
          }).on('error', reject),
        );
      });
      expect(raw.length).toBeLessThan(script.length / 10);
      expect(gunzipSync(raw).toString()).toBe(script);

      const etag = asset.headers.get('etag')!;
      expect((await fetch(`${url}/assets/index-abc123.js`, { headers: { 'if-none-match': etag } })).status).toBe(304);

      const missing = await fetch(`${url}/assets/index-old.js`);
      expect(missing.status).toBe(404);
      expect(await missing.text()).not.toContain('<title>');
      const api = await fetch(`${url}/api/v1/nothing-here`);
      expect(api.status).toBe(404);
      expect(((await api.json()) as { code: string }).code).toBe('BK_ERR_NOT_FOUND');
      // No path reaches the file system: a traversal gets the page (it is an app path), never the file.
      const traversal = await fetch(`${url}/assets/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd`);
      expect(await traversal.text()).not.toContain('root:');
      expect(await (await fetch(`${url}/%2e%2e%2f%2e%2e%2fetc%2fpasswd`)).text()).toBe(page);
    } finally {
      await close();
    }
  });

  it('says how to build the console when it is not built', async () => {
    const { url, close } = await serve(null);
    try {
      const r = await fetch(`${url}/`);
      expect(r.status).toBe(404);
      expect(await r.text()).toMatch(/npm run build/);
    } finally {
      await close();
    }
  });
});
