// Reads a text/event-stream response message by message (the live channel, GET /api/v1/events),
// for the API tests of sessions (test/api/events.test.ts) and of pull jobs.

export interface SseMessage {
  event: string;
  data: any;
}

/** Reads a text/event-stream response message by message. */
export function sseReader(response: Response) {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  const seen: SseMessage[] = [];
  let comments = 0;
  let done = false;
  const pump = (async () => {
    for (;;) {
      const { value, done: end } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (end) break;
      buffer += decoder.decode(value, { stream: true });
      let cut: number;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        if (block.startsWith(':')) comments += 1;
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event && data) seen.push({ event, data: JSON.parse(data) });
      }
    }
    done = true;
  })();
  return {
    seen,
    comments: () => comments,
    ended: () => done,
    pump,
    async next(pick: (m: SseMessage) => boolean, what: string, timeoutMs = 5000): Promise<SseMessage> {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const found = seen.find(pick);
        if (found) return found;
        if (done || Date.now() > until) throw new Error(`no ${what} event; got ${JSON.stringify(seen.map((m) => m.event))}${done ? ' and the stream ended' : ''}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    cancel: () => reader.cancel().catch(() => undefined),
  };
}
