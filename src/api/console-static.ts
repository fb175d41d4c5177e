// Serves the built console (web/, built by `npm run build` into dist/web) at `/`: the files
// Vite wrote, read once at start-up into memory (with a gzip copy), and index.html for every
// other GET outside /api so the single-page app's own paths (/repositories/web) load on reload.
// Hashed assets (/assets/*-HASH.js) are cached for a year; index.html is revalidated each time.
//
// Never: serves a file that was not in the folder at start-up (no path ever reaches the file
// system), answers an /api path or a missing asset with index.html, or imports the console's
// code (React stays out of the CLI bundle).

import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.webmanifest': 'application/manifest+json',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
};
const COMPRESSIBLE = new Set(['.html', '.js', '.css', '.svg', '.json', '.webmanifest', '.txt']);
const YEAR_SECONDS = 365 * 86400;

/** The console's own pages allow scripts, styles and requests from this origin only. */
export const CONSOLE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

interface StaticFile {
  body: Buffer;
  gzip: Buffer | null;
  type: string;
  etag: string;
  cacheControl: string;
}

/** dist/web of this installation, looked for upwards from this module (src/, dist/ or a bundle chunk), or null. */
export function findConsoleDir(from = dirname(fileURLToPath(import.meta.url))): string | null {
  let dir = from;
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'dist', 'web');
    if (existsSync(join(candidate, 'index.html'))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return null;
}

function loadFiles(root: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) {
        walk(path);
        continue;
      }
      const ext = extname(name).toLowerCase();
      const body = readFileSync(path);
      const urlPath = `/${relative(root, path).split(sep).join('/')}`;
      files.set(urlPath, {
        body,
        gzip: COMPRESSIBLE.has(ext) && body.length > 1024 ? gzipSync(body, { level: 9 }) : null,
        type: TYPES[ext] ?? 'application/octet-stream',
        etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
        cacheControl: urlPath.startsWith('/assets/') ? `public, max-age=${YEAR_SECONDS}, immutable` : 'no-cache',
      });
    }
  };
  walk(root);
  return files;
}

/**
 * Registers GET / and the catch-all for the console. `dir` null: the console is not built, and
 * `/` says how to build it. Paths under /api are left to `apiNotFound`.
 */
export function registerConsole(app: FastifyInstance, dir: string | null, apiNotFound: (request: FastifyRequest, reply: FastifyReply) => unknown): void {
  const files = dir ? loadFiles(dir) : new Map<string, StaticFile>();
  const index = files.get('/index.html');

  const send = (request: FastifyRequest, reply: FastifyReply, file: StaticFile) => {
    reply.header('cache-control', file.cacheControl).header('etag', file.etag).header('vary', 'accept-encoding');
    if (file.type.startsWith('text/html')) {
      reply.header('content-security-policy', CONSOLE_CSP).header('x-frame-options', 'DENY').header('referrer-policy', 'no-referrer');
    }
    if (request.headers['if-none-match'] === file.etag) return reply.code(304).send();
    reply.type(file.type);
    const gzip = file.gzip && /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''));
    if (gzip) reply.header('content-encoding', 'gzip');
    return reply.send(gzip ? file.gzip : file.body);
  };

  app.route({
    method: ['GET', 'HEAD'],
    url: '/*',
    handler: async (request, reply) => {
      let path: string;
      try {
        path = decodeURIComponent(request.url.split('?')[0]!);
      } catch {
        return reply.code(400).type('text/plain; charset=utf-8').send('bad path\n');
      }
      if (path === '/api' || path.startsWith('/api/')) return apiNotFound(request, reply);
      const file = files.get(path);
      if (file) return send(request, reply, file);
      // A missing asset is a 404, never the page: a stale index.html would run HTML as script.
      if (path.startsWith('/assets/') || extname(path) !== '') {
        return reply.code(404).type('text/plain; charset=utf-8').send('not found\n');
      }
      if (!index) {
        return reply
          .code(404)
          .type('text/plain; charset=utf-8')
          .send('The borgkeep console is not built: run `npm run build` in the borgkeep folder, then restart borgkeep serve. The API is at /api/v1.\n');
      }
      return send(request, reply, index);
    },
  });
}
