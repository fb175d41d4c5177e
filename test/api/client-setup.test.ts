// GET /repositories/{name}/setup over real HTTP: a grant's client set-up as the console shows it
// (the host from the Host header when the API runs without a gateway), the same text the pure
// functions give, bad client paths and missing grants refused in one sentence, nothing secret.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { clientSetup } from '../../src/gateway/client-setup.js';
import { ed25519Key } from '../support/temp-store.js';
import { startApi, type ApiClient, type ApiHarness } from './api-harness.js';

let h: ApiHarness;
let viewer: ApiClient;

beforeAll(async () => {
  h = await startApi();
  viewer = await h.userClient('vic', 'viewer');
  await h.temp.store.createRepository({ name: 'web', quotaBytes: null });
  await h.temp.store.addKey({ name: 'laptop', publicKey: ed25519Key() });
  await h.temp.store.addKey({ name: 'stranger', publicKey: ed25519Key() });
  await h.temp.store.setGrant('laptop', 'web', { role: 'append', writesPerDay: null, fromCidrs: null, expiresAt: null });
});
afterAll(() => h.close());

it("answers a grant's set-up, the very text of the pure functions", async () => {
  const r = await viewer.call('GET', '/api/v1/repositories/web/setup?key=laptop&identityFile=/root/.ssh/id_backup');
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  const key = await h.temp.store.getKey('laptop');
  const expected = clientSetup({
    target: { user: 'borg', host: '127.0.0.1', port: 2222 },
    hostKeys: [],
    repository: { name: 'web', initialized: false },
    key: { name: 'laptop', fingerprint: key.fingerprint, role: 'append' },
    identityFile: '/root/.ssh/id_backup',
    configDir: '/etc/borgmatic',
  });
  expect(r.body).toMatchObject({ repository: 'web', key: 'laptop', role: 'append', initialized: false, encryption: 'repokey-blake2', ...expected });
});

it('refuses bad client paths and keys without a grant in one sentence', async () => {
  const bad = await viewer.call('GET', `/api/v1/repositories/web/setup?key=laptop&configDir=${encodeURIComponent('/etc/bor gmatic')}`);
  expect(bad.status).toBe(400);
  expect(bad.body.message).toMatch(/^the borgmatic folder must be an absolute path on the client/);
  const none = await viewer.call('GET', '/api/v1/repositories/web/setup?key=stranger');
  expect(none.status).toBe(404);
  expect(none.body.message).toBe("key 'stranger' has no grant on repository 'web'");
  expect((await viewer.call('GET', '/api/v1/repositories/nope/setup?key=laptop')).status).toBe(404);
});
