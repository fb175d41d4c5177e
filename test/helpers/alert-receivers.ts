// Real receivers for alerts in tests: an SMTP server (smtp-server) that keeps every message it
// is given, and an HTTP server that keeps every request (or answers with an error status, to
// test retries). Both on loopback, on ports the system picks.

import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

export interface ReceivedMail {
  from: string;
  to: string[];
  /** The raw message (headers and body). */
  raw: string;
  subject: string;
  at: number;
}

export interface MailSink {
  port: number;
  mails: ReceivedMail[];
  /** Resolves with the first mail `pick` accepts; fails after `ms`. */
  waitFor(pick: (m: ReceivedMail) => boolean, ms?: number): Promise<ReceivedMail>;
  close(): Promise<void>;
}

export interface ReceivedRequest {
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

export interface HttpSink {
  url: string;
  requests: ReceivedRequest[];
  /** The status the next requests get (200 unless changed). */
  status: number;
  waitFor(pick: (r: ReceivedRequest) => boolean, ms?: number): Promise<ReceivedRequest>;
  close(): Promise<void>;
}

async function waitIn<T>(list: T[], pick: (x: T) => boolean, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = list.find(pick);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`${what}: none arrived within ${ms} ms (${list.length} other(s) did)`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * `tls`: a certificate and key (PEM) to offer STARTTLS with; then AUTH is refused before the
 * upgrade. Without it, plain SMTP on loopback with AUTH allowed in the clear.
 */
export async function startMailSink(options: { user?: string; password?: string; tls?: { cert: string; key: string } } = {}): Promise<MailSink & { tlsUsed: () => boolean }> {
  const mails: ReceivedMail[] = [];
  let tlsUsed = false;
  const server = new SMTPServer({
    secure: false,
    ...(options.tls ? { key: options.tls.key, cert: options.tls.cert } : { disabledCommands: ['STARTTLS'] }),
    allowInsecureAuth: !options.tls,
    onSecure(_socket, _session, callback) {
      tlsUsed = true;
      callback();
    },
    authOptional: options.user === undefined,
    logger: false,
    onAuth(auth, _session, callback) {
      if (auth.username === options.user && auth.password === options.password) callback(null, { user: auth.username });
      else callback(new Error('wrong user or password'));
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const subject = /^Subject: (.*(?:\r?\n[ \t].*)*)/m.exec(raw)?.[1].replace(/\r?\n[ \t]/g, ' ') ?? '';
        mails.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw,
          subject,
          at: Date.now(),
        });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    mails,
    tlsUsed: () => tlsUsed,
    waitFor: (pick, ms = 10_000) => waitIn(mails, pick, ms, 'mail'),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export async function startHttpSink(): Promise<HttpSink> {
  const requests: ReceivedRequest[] = [];
  const sink = { status: 200 } as { status: number };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() });
      res.statusCode = sink.status;
      res.end(sink.status < 300 ? 'ok' : 'broken on purpose');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return Object.assign(sink, {
    url: `http://127.0.0.1:${port}/hook`,
    requests,
    waitFor: (pick: (r: ReceivedRequest) => boolean, ms = 10_000) => waitIn(requests, pick, ms, 'webhook request'),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}
