// Polling the ledger until a session shows up in the state a test waits for (sessions are
// written by other processes: borg-serve, the gateway).

/** Reads the ledger every 100 ms until `pick` finds a session; fails after `tries` reads. */
export async function waitForSession<T>(read: () => Promise<T[]>, pick: (sessions: T[]) => T | undefined, what: string, tries = 200): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const found = pick(await read());
    if (found) return found;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: not seen in the ledger after ${tries} reads`);
}
