// borg serve's stderr goes back to the client (borg prints it as "Remote: ..."), so it is
// filtered line by line: real paths become the path the client used, and the lines of borg's
// sysinfo block (PID, CWD, argv, SSH_ORIGINAL_COMMAND) are dropped. JSON log lines stay JSON.

const SYSINFO_LINE = /^\s*(PID:|CWD:|sys\.argv:|SSH_ORIGINAL_COMMAND:|Platform:|Linux:|Borg:|Python:|Python.*msgpack)/;

export function createTextScrubber(replacements: ReadonlyArray<readonly [string, string]>): (text: string) => string {
  const pairs = replacements.filter(([from]) => from.length > 0).sort((a, b) => b[0].length - a[0].length);
  return (text) => {
    let out = text;
    for (const [from, to] of pairs) out = out.split(from).join(to);
    return out
      .split('\n')
      .filter((line) => !SYSINFO_LINE.test(line))
      .join('\n');
  };
}

export interface StderrScrubber {
  /** Takes raw stderr bytes; returns the scrubbed complete lines seen so far. */
  push(chunk: Buffer): string;
  /** Returns whatever partial line is left, scrubbed. */
  end(): string;
}

export function createStderrScrubber(scrubText: (text: string) => string): StderrScrubber {
  let partial = '';
  const line = (l: string): string | null => {
    if (l.startsWith('{')) {
      try {
        const obj = JSON.parse(l) as Record<string, unknown>;
        if (typeof obj.message === 'string') obj.message = scrubText(obj.message);
        return JSON.stringify(obj);
      } catch {
        // not JSON after all: treat as text
      }
    }
    if (SYSINFO_LINE.test(l)) return null;
    return scrubText(l);
  };
  const lines = (ls: string[]): string =>
    ls
      .map(line)
      .filter((l): l is string => l !== null)
      .map((l) => `${l}\n`)
      .join('');
  return {
    push(chunk) {
      const text = partial + chunk.toString('utf8');
      const parts = text.split('\n');
      partial = parts.pop() ?? '';
      // A runaway line without newline must not grow without bound.
      if (partial.length > 1 << 20) {
        parts.push(partial);
        partial = '';
      }
      return lines(parts);
    },
    end() {
      const rest = partial;
      partial = '';
      return rest ? lines([rest]) : '';
    },
  };
}
