import { expect, test } from 'vitest';

import { createAuthThrottle } from './auth-throttle.js';

test('an address is blocked after `limit` failures in the window and free again once they age out', () => {
  let t = 1_000_000;
  const throttle = createAuthThrottle({ limit: 3, windowMs: 60_000, now: () => t });
  for (let i = 0; i < 2; i++) throttle.fail('192.0.2.1');
  expect(throttle.blocked('192.0.2.1')).toBe(false);
  t += 10_000;
  throttle.fail('192.0.2.1');
  expect(throttle.blocked('192.0.2.1')).toBe(true);
  expect(throttle.blocked('192.0.2.2')).toBe(false);
  expect(throttle.blockedCount()).toBe(1);
  // The first two failures leave the window 60 s after they happened; the third stays.
  t += 50_001;
  expect(throttle.blocked('192.0.2.1')).toBe(false);
  throttle.fail('192.0.2.1');
  throttle.fail('192.0.2.1');
  expect(throttle.blocked('192.0.2.1')).toBe(true);
  t += 60_001;
  expect(throttle.blocked('192.0.2.1')).toBe(false);
  expect(throttle.blockedCount()).toBe(0);
});

test('a limit of 0 turns throttling off', () => {
  const throttle = createAuthThrottle({ limit: 0, windowMs: 60_000, now: () => 0 });
  for (let i = 0; i < 100; i++) throttle.fail('192.0.2.1');
  expect(throttle.blocked('192.0.2.1')).toBe(false);
});

test('memory stays bounded under a spray of addresses: the stalest are dropped', () => {
  let t = 0;
  const throttle = createAuthThrottle({ limit: 2, windowMs: 60_000, now: () => t, maxAddresses: 100 });
  throttle.fail('198.51.100.1');
  throttle.fail('198.51.100.1');
  for (let i = 0; i < 1000; i++) {
    t++;
    throttle.fail(`10.0.${i >> 8}.${i & 255}`);
  }
  // The early offender was the stalest entry and is forgotten; the newest are kept.
  expect(throttle.blocked('198.51.100.1')).toBe(false);
  throttle.fail('10.0.3.231');
  expect(throttle.blocked('10.0.3.231')).toBe(true);
});

test('a failure taken back (the connection logged in after all) no longer counts', () => {
  const throttle = createAuthThrottle({ limit: 2, windowMs: 60_000, now: () => 0 });
  throttle.fail('192.0.2.9');
  throttle.fail('192.0.2.9');
  expect(throttle.blocked('192.0.2.9')).toBe(true);
  throttle.forgive('192.0.2.9');
  expect(throttle.blocked('192.0.2.9')).toBe(false);
  throttle.forgive('192.0.2.9');
  throttle.forgive('192.0.2.9'); // nothing left to take back: no effect
  expect(throttle.blockedCount()).toBe(0);
});
