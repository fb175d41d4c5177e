// Within one process, a write that may end running sessions (a key revoked, a grant removed or
// replaced) wakes their grant watches at once, instead of at their next look. With the embedded
// transport the console's API and the sessions share the process, so a revocation there ends a
// backup without waiting out the watch's interval. Other processes (the CLI, sshd's forced
// commands) still learn of it at the watch's next look at the store.

type Listener = () => void;
const listeners = new Set<Listener>();

/** Called by the store after it committed such a write. */
export function noteGrantsChanged(): void {
  for (const listener of listeners) {
    try {
      listener();
    } catch {
      // A watch that cannot look now looks at its next interval.
    }
  }
}

/** Calls `listener` after each such write in this process until the returned function is called. */
export function onGrantsChanged(listener: Listener): () => void {
  listeners.add(listener);
  return () => void listeners.delete(listener);
}
