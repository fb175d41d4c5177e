// A request that reaches the server while it closes (a kept-alive connection, a request already
// on its way) is answered 503 in our error shape ({code, message}), not with Fastify's own body,
// and with Connection: close so the client does not send the next one on the same connection.

import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { createApiServer } from '../../src/api/api-server.js';
import { createPasswordHasher } from '../../src/api/auth/passwords.js';
import { openTempStore, type TempStore } from '../support/temp-store.js';
import { TEST_ARGON2 } from './api-harness.js';

let temp: TempStore | undefined;
afterEach(async () => {
  await temp?.cleanup();
  temp = undefined;
});

function get(port: number, path: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('a request while the server closes', () => {
  it('is answered 503 BK_ERR_BUSY in the API error shape, with Connection: close', async () => {
    temp = await openTempStore();
    const server = createApiServer({ store: temp.store, passwords: await createPasswordHasher(TEST_ARGON2), now: temp.clock.now });
    // Something else still finishing when the close begins holds it open for a moment.
    let releaseClose!: () => void;
    const held = new Promise<void>((resolve) => (releaseClose = resolve));
    server.app.addHook('preClose', async () => held);
    const { port } = await server.listen('127.0.0.1', 0);
    expect((await get(port, '/api/v1/openapi.json')).status).toBe(200);

    const closing = server.close();
    await new Promise((resolve) => setTimeout(resolve, 20));
    const r = await get(port, '/api/v1/openapi.json');
    releaseClose();
    await closing;
    expect(r.status).toBe(503);
    expect(JSON.parse(r.body)).toEqual({ code: 'BK_ERR_BUSY', message: 'the server is shutting down; try again in a moment' });
    expect(r.headers.connection).toBe('close');
    expect(r.headers['cache-control']).toBe('no-store');
  });
});
