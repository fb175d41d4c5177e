// The shapes of the alert configuration, one zod schema each, used by the config file
// (`borgkeep serve --config FILE`), the HTTP API and the console alike: the thresholds of the
// rules, the mail server, and channels.

import { z } from 'zod';

import { WEBHOOK_FORMATS } from '../store/monitoring-store.js';

/** Store setting names: the mail server, the rule thresholds (ALERT_SETTINGS in monitor.ts). */
export const SMTP_SETTINGS = 'smtp';

const seconds = (min: number, max: number) => z.number().int().min(min).max(max);

export const alertSettingsSchema = z
  .object({
    repeatSeconds: seconds(60, 30 * 86_400).describe('while an alert lasts, it is sent again this often (default 4 h)'),
    quotaWarnPercent: z.number().min(1).max(100).describe('quota use that raises a warning (default 80)'),
    quotaCriticalPercent: z.number().min(1).max(100).describe('quota use that raises a critical alert (default 95)'),
    denialWindowSeconds: seconds(60, 7 * 86_400).describe('a denial alert lasts until no denial came for this long (default 1 h)'),
    authFailureThreshold: z.number().int().min(1).max(10_000).describe('failed logins of one registered key that raise an alert (default 5)'),
    authFailureWindowSeconds: seconds(60, 86_400).describe('...within this time (default 10 min)'),
    diskFreePercent: z.number().min(0).max(100).describe('free space on the data directory below which an alert is raised (default 10)'),
  })
  .partial()
  .strict()
  .meta({ id: 'AlertSettings' });

export const smtpSchema = z
  .object({
    host: z.string().min(1).max(255),
    port: z.number().int().min(1).max(65535).default(587),
    secure: z.boolean().default(false).describe('TLS from the first byte (port 465); otherwise STARTTLS when offered'),
    requireTls: z.boolean().default(true).describe('refuse to send unless STARTTLS upgrades the connection (ignored with secure)'),
    user: z.string().max(255).nullable().default(null),
    password: z.string().max(1024).nullable().default(null),
    from: z.string().min(3).max(255).describe('the From address, e.g. "borgkeep <backup@example.org>"'),
    verifyCertificate: z.boolean().default(true),
  })
  .strict()
  .meta({ id: 'SmtpSettings' });

export const channelSchema = z
  .object({
    name: z.string().min(1).max(64),
    kind: z.enum(['email', 'webhook']),
    target: z.string().min(1).max(2048).describe('mail: addresses separated by commas; webhook: the URL'),
    format: z.enum(WEBHOOK_FORMATS).nullable().optional().describe('webhook: json (signed; default), slack, discord or text (ntfy)'),
    secret: z.string().min(16).max(256).nullable().optional().describe('webhook: HMAC-SHA256 signing secret (X-Borgkeep-Signature)'),
    enabled: z.boolean().optional(),
  })
  .strict();

/** The `alerts` section of the config file. */
export const alertConfigSchema = z
  .object({
    settings: alertSettingsSchema.optional(),
    smtp: smtpSchema.optional(),
    channels: z.array(channelSchema).optional(),
  })
  .strict();

export type AlertConfig = z.output<typeof alertConfigSchema>;
