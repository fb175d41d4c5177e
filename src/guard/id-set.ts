// A set of 32-byte object ids in one flat buffer: 64 bytes per id at most (load factor 1/2),
// against ~150 for a Set of strings. Holds the ids a session put since its last commit.
// borg ids are keyed hashes, so their first bytes spread evenly; a client that picks ids to
// collide only slows its own session down.

const ID_SIZE = 32;

export interface IdSet {
  add(id: Buffer): void;
  has(id: Buffer): boolean;
  clear(): void;
  readonly size: number;
}

export function createIdSet(requestedSlots = 1024): IdSet {
  // At least 2: a table of 0 slots never grows (0 * 2) and probes `% 0`, i.e. slot NaN.
  const initialSlots = Math.max(2, Math.floor(requestedSlots) || 0);
  let slots = initialSlots;
  let table = Buffer.alloc(slots * ID_SIZE);
  let used = new Uint8Array(slots);
  let size = 0;

  function findSlot(t: Buffer, u: Uint8Array, n: number, id: Buffer): number {
    let i = id.readUInt32LE(0) % n;
    while (u[i] && t.compare(id, 0, ID_SIZE, i * ID_SIZE, i * ID_SIZE + ID_SIZE) !== 0) i = (i + 1) % n;
    return i;
  }

  function grow(): void {
    const n = slots * 2;
    const t = Buffer.alloc(n * ID_SIZE);
    const u = new Uint8Array(n);
    for (let i = 0; i < slots; i++) {
      if (!used[i]) continue;
      const id = table.subarray(i * ID_SIZE, i * ID_SIZE + ID_SIZE);
      const j = findSlot(t, u, n, id);
      id.copy(t, j * ID_SIZE);
      u[j] = 1;
    }
    slots = n;
    table = t;
    used = u;
  }

  return {
    get size() {
      return size;
    },
    add(id: Buffer) {
      if ((size + 1) * 2 > slots) grow();
      const i = findSlot(table, used, slots, id);
      if (used[i]) return;
      id.copy(table, i * ID_SIZE, 0, ID_SIZE);
      used[i] = 1;
      size++;
    },
    has(id: Buffer) {
      return used[findSlot(table, used, slots, id)] === 1;
    },
    clear() {
      slots = initialSlots;
      table = Buffer.alloc(slots * ID_SIZE);
      used = new Uint8Array(slots);
      size = 0;
    },
  };
}
