// Sending one alert message to one channel: mail over SMTP (nodemailer; TLS, STARTTLS, login),
// or an HTTP POST to a webhook. A webhook's JSON body is documented in docs/alerts.md and signed
// when the channel has a secret: X-Borgkeep-Signature is "sha256=" and the hex HMAC-SHA256, keyed
// with the secret, of "<X-Borgkeep-Timestamp>.<body>", so a receiver can check both who sent it
// and that it is not replayed. The slack, discord and text formats carry one line of text in the
// shape those services (and ntfy) take. A send either resolves or throws one clear sentence.

import { createHmac } from 'node:crypto';

import type { AlertChannel, DeliveryEvent } from '../store/monitoring-store.js';

export interface AlertMessage {
  readonly event: DeliveryEvent;
  readonly alert: {
    readonly id: number | null;
    readonly rule: string;
    readonly severity: string;
    readonly repository: string | null;
    readonly summary: string;
    readonly detail: string;
    readonly openedAt: Date;
    readonly resolvedAt: Date | null;
  };
  /** The server's name, so people with several know which one speaks. */
  readonly server: string;
  readonly sentAt: Date;
}

export interface SmtpSettings {
  readonly host: string;
  readonly port: number;
  /** TLS from the first byte (port 465); otherwise STARTTLS when the server offers it. */
  readonly secure: boolean;
  /** Refuse to send unless the connection is upgraded with STARTTLS. */
  readonly requireTls: boolean;
  readonly user: string | null;
  readonly password: string | null;
  readonly from: string;
  /** Check the server's certificate (turn off only for a test server). */
  readonly verifyCertificate: boolean;
}

export type SendAlert = (channel: AlertChannel, message: AlertMessage) => Promise<void>;

const LABEL: Readonly<Record<DeliveryEvent, string>> = { opened: 'ALERT', repeated: 'STILL', resolved: 'RESOLVED', test: 'TEST' };
const SEND_TIMEOUT_MS = 15_000;

/** One line for a chat message or a mail subject. */
export function messageLine(m: AlertMessage): string {
  const where = m.alert.repository && !m.alert.summary.includes(`'${m.alert.repository}'`) ? ` [${m.alert.repository}]` : '';
  return `[borgkeep ${m.server}] ${LABEL[m.event]}: ${m.alert.summary}${where}`;
}

export function messageText(m: AlertMessage): string {
  const lines = [messageLine(m), '', m.alert.detail, ''];
  lines.push(`rule: ${m.alert.rule}, severity: ${m.alert.severity}`);
  lines.push(`opened: ${m.alert.openedAt.toISOString()}`);
  if (m.alert.resolvedAt) lines.push(`resolved: ${m.alert.resolvedAt.toISOString()}`);
  if (m.event === 'test') lines.push('', 'This is a test message: the channel works.');
  return lines.join('\n');
}

/** The JSON body of a json-format webhook (docs/alerts.md). */
export function webhookBody(m: AlertMessage): string {
  return JSON.stringify({
    event: m.event,
    server: m.server,
    sentAt: m.sentAt.toISOString(),
    alert: { ...m.alert, openedAt: m.alert.openedAt.toISOString(), resolvedAt: m.alert.resolvedAt?.toISOString() ?? null },
  });
}

export function signWebhook(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

export interface ChannelSenderDeps {
  /** The mail server, or null when none is set up. */
  smtp: () => Promise<SmtpSettings | null>;
  fetch?: typeof globalThis.fetch;
}

export function createChannelSender(deps: ChannelSenderDeps): SendAlert {
  const doFetch = deps.fetch ?? globalThis.fetch;

  async function sendMail(channel: AlertChannel, m: AlertMessage): Promise<void> {
    const smtp = await deps.smtp();
    if (!smtp) throw new Error('no mail server is set up (alert settings: smtp)');
    const { default: nodemailer } = await import('nodemailer');
    const transport = nodemailer.createTransport({
      host: smtp.host,
      port: smtp.port,
      secure: smtp.secure,
      requireTLS: smtp.requireTls,
      auth: smtp.user ? { user: smtp.user, pass: smtp.password ?? '' } : undefined,
      tls: { rejectUnauthorized: smtp.verifyCertificate },
      connectionTimeout: SEND_TIMEOUT_MS,
      greetingTimeout: SEND_TIMEOUT_MS,
      socketTimeout: SEND_TIMEOUT_MS,
    });
    try {
      await transport.sendMail({ from: smtp.from, to: channel.target, subject: messageLine(m), text: messageText(m) });
    } catch (error) {
      throw new Error(`the mail server ${smtp.host}:${smtp.port} did not take the message: ${(error as Error).message}`);
    } finally {
      transport.close();
    }
  }

  async function sendWebhook(channel: AlertChannel, m: AlertMessage): Promise<void> {
    const line = messageLine(m);
    const format = channel.format ?? 'json';
    const body =
      format === 'json' ? webhookBody(m) : format === 'slack' ? JSON.stringify({ text: line }) : format === 'discord' ? JSON.stringify({ content: line }) : messageText(m);
    const timestamp = String(Math.floor(m.sentAt.getTime() / 1000));
    const headers: Record<string, string> = {
      'content-type': format === 'text' ? 'text/plain; charset=utf-8' : 'application/json',
      'user-agent': 'borgkeep',
      'x-borgkeep-event': m.event,
      'x-borgkeep-timestamp': timestamp,
    };
    if (format === 'text') headers.title = line.replace(/[^\x20-\x7e]/g, '?'); // ntfy shows it as the title
    if (channel.secret) headers['x-borgkeep-signature'] = signWebhook(channel.secret, timestamp, body);
    let response: Response;
    try {
      response = await doFetch(channel.target, { method: 'POST', headers, body, signal: AbortSignal.timeout(SEND_TIMEOUT_MS), redirect: 'error' });
    } catch (error) {
      const cause = (error as { cause?: { message?: string } }).cause?.message ?? (error as Error).message;
      throw new Error(`the webhook ${new URL(channel.target).host} could not be reached: ${cause}`);
    }
    await response.arrayBuffer().catch(() => undefined);
    if (!response.ok) throw new Error(`the webhook ${new URL(channel.target).host} answered HTTP ${response.status}`);
  }

  return (channel, m) => (channel.kind === 'email' ? sendMail(channel, m) : sendWebhook(channel, m));
}
