// A small seeded PRNG (mulberry32) so that "random" test inputs are the same on every run and a
// failure can be replayed from its seed.

export interface Prng {
  /** Uniform float in [0, 1). */
  next(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  /** Uniform integer in [lo, hi]. */
  range(lo: number, hi: number): number;
  bytes(n: number): Buffer;
  pick<T>(items: readonly T[]): T;
}

export function createPrng(seed: number): Prng {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number): number => Math.floor(next() * n);
  return {
    next,
    int,
    range: (lo, hi) => lo + int(hi - lo + 1),
    bytes(n) {
      const b = Buffer.allocUnsafe(n);
      let i = 0;
      for (; i + 4 <= n; i += 4) b.writeUInt32LE(Math.floor(next() * 4294967296), i);
      for (; i < n; i++) b[i] = int(256);
      return b;
    },
    pick: (items) => items[int(items.length)],
  };
}
