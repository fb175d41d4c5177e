// The server's HTTP API, SSH gateway and jobs share one thread: a job that walks every repository
// without giving the event loop a turn holds every request meanwhile. The archive-checks pass over
// 1,000 repositories (a directory listing and a few stats each, no real wait) ran as one task of
// about 115 ms every half minute, and that alone put the API's p99 over 50 ms in some rounds of
// bench/api.bench.mjs.

/** Resolves after the event loop has run what was waiting (timers, I/O, requests): one turn. */
export const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
