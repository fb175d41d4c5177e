// borg serve's stderr goes back to the client (borg prints it as "Remote: ..."), and the texts of
// its exception replies are shown there too, so both are filtered before the client sees them:
// real paths become the path the client used; Python tracebacks lose their frames (server
// install paths, line numbers, code) and keep the exception line (class and message); the lines
// of borg's sysinfo block (PID, CWD, argv, SSH_ORIGINAL_COMMAND) are dropped; the server
// processes named by borg's lock messages are hidden. JSON log lines stay JSON.
//
// It must never pass on a traceback frame, a PID or an argv, whatever the log level the client
// asked for and whichever message format (tuple or dict) the session speaks.

const SYSINFO_LINE = /^\s*(PID:|CWD:|sys\.argv:|SSH_ORIGINAL_COMMAND:|Platform:|Linux:|Borg:|Python:|Python.*msgpack)/;

/** The head of a Python traceback, possibly behind a `$LOG LEVEL logger Remote: ` prefix. */
const TRACEBACK_HEAD = /Traceback \(most recent call last\):\s*$/;
/** A traceback frame: names a server file and a line of server code. */
const FRAME_LINE = /^\s*File "[^"]*", line \d+/;
/** A word of a text: the unit the server-name rules look at (linear, whatever the input). */
const WORD = /[^\s"'(),:[\]]+/g;
/** A path through the server's Python installation. */
const SERVER_CODE_PATH = /\/(?:dist-packages|site-packages|python3(?:\.\d+)?)(?:\/|$)/;
/** borg's lock ids, "HOSTID.PID-THREAD" with HOSTID "fqdn@node" (its stale-lock messages). */
const LOCK_ID = /^\S*@\d+\.\d+-[0-9a-f]+\.?$/;
/** borg's lock roster names a process as "host H pid P thread T". */
const ROSTER_ID = /\bhost \S+ pid \d+ thread \d+/g;
/** A Python warning's "file.py:LINE: " prefix (its path is already "(server)" by then). */
const WARNING_PREFIX = /^(\s*)\S+\.py:\d+: |^(\s*)\(server\):\d+: /;

/**
 * A line filter that drops the lines of Python tracebacks: the head, each frame, the code lines
 * under it (indented) and the blank lines between them (borg's JSON log joins frames with blank
 * lines); the first line that is not indented is the exception ("Class: message") and is kept.
 * It keeps state across lines, for a traceback that arrives as one stderr line at a time.
 */
export function createTracebackFilter(): (line: string) => boolean {
  let inTraceback = false;
  return (line) => {
    if (TRACEBACK_HEAD.test(line)) {
      inTraceback = true;
      return false;
    }
    if (FRAME_LINE.test(line)) return false; // also outside a traceback (a stack in a warning)
    if (!inTraceback) return true;
    if (line.trim() === '' || /^\s/.test(line)) return false;
    inTraceback = false;
    return true;
  };
}

/** What of a text names the server, hidden, before the line filters run. */
function hideServerNames(text: string): string {
  return text
    .replace(WORD, (word) => (SERVER_CODE_PATH.test(word) ? '(server)' : LOCK_ID.test(word) ? '(a server process)' : word))
    .replace(ROSTER_ID, 'a server process');
}

export function createTextScrubber(replacements: ReadonlyArray<readonly [string, string]>): (text: string) => string {
  const pairs = replacements.filter(([from]) => from.length > 0).sort((a, b) => b[0].length - a[0].length);
  return (text) => {
    let out = hideServerNames(text);
    for (const [from, to] of pairs) out = out.split(from).join(to);
    const keep = createTracebackFilter();
    return out
      .split('\n')
      .filter((line) => keep(line) && !SYSINFO_LINE.test(line))
      .map((line) => line.replace(WARNING_PREFIX, '$1$2'))
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
  // A tuple-format session logs a traceback as text, one line at a time.
  const keep = createTracebackFilter();
  const line = (l: string): string | null => {
    if (l.startsWith('{')) {
      try {
        const obj = JSON.parse(l) as Record<string, unknown>;
        if (typeof obj.message === 'string') {
          obj.message = scrubText(obj.message);
          // A message that was nothing but a traceback of the server says nothing to the client.
          if ((obj.message as string).trim() === '') return null;
        }
        return JSON.stringify(obj);
      } catch {
        // not JSON after all: treat as text
      }
    }
    if (!keep(l) || SYSINFO_LINE.test(l)) return null;
    const scrubbed = scrubText(l);
    return scrubbed === '' && l !== '' ? null : scrubbed;
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
