// What refused a call, for every place the console lists denials: a person's label for the
// guard's reason code (the code itself stays visible, for searching the logs), and for archive-rule
// refusals the rule the guard named in its message ("... (rule: ...)"). Labels only: the message
// the ledger holds is shown as it is, never rewritten.

/** One label per reason code of src/guard/grant-policy.ts (DenyReason). */
export const DENIAL_LABELS: Readonly<Record<string, string>> = {
  BK_DENY_ROLE: "not allowed by the key's role",
  BK_DENY_OVERWRITE: 'overwrite of existing data',
  BK_DENY_DELETE_OLD: 'deletion of older data',
  BK_DENY_UNLOCKED_WRITE: 'write without the repository lock',
  BK_DENY_SECOND_OPEN: 'second open in one session',
  BK_DENY_SAVE_KEY: 'change of the repository key',
  BK_DENY_COMPACT: 'compaction not allowed',
  BK_DENY_REPAIR: 'repair not allowed',
  BK_DENY_DESTROY: 'repository destruction',
  BK_DENY_BREAK_LOCK: 'breaking the lock',
  BK_DENY_INJECT: 'injected command or option',
  BK_DENY_UNKNOWN_METHOD: 'unknown borg call',
  BK_DENY_BAD_ARGS: 'malformed arguments',
  BK_DENY_NOT_OPEN: 'call before opening a repository',
  BK_DENY_NONCE: 'encryption nonce moved back',
  BK_DENY_NONCE_JUMP: 'encryption nonce jump',
  BK_DENY_CREATE: 'repository creation not allowed',
  BK_DENY_NO_REPOSITORY: 'repository not granted',
  BK_DENY_REVOKED: 'key revoked',
  BK_DENY_EXPIRED: 'grant expired',
  BK_DENY_ADDRESS: 'client address not allowed',
  BK_DENY_WRITE_LIMIT: 'write limit or quota reached',
  BK_DENY_PROTOCOL: 'protocol violation',
  BK_DENY_SESSION_LIMIT: 'too many sessions',
  BK_DENY_SHUTDOWN: 'server shutting down',
  BK_DENY_NODE_DOWN: 'storage node unreachable',
  BK_DENY_GATE: 'compaction gate closed',
  BK_DENY_ARCHIVE_RULE: 'archive rule',
};

export function denialLabel(reason: string): string {
  return DENIAL_LABELS[reason] ?? 'refused';
}

/** The rule an archive-rule refusal names: the guard writes "... (rule: RULE) (...)". */
export function refusingRule(reason: string, message: string): string | null {
  if (reason !== 'BK_DENY_ARCHIVE_RULE') return null;
  return /\(rule: ([^()]*(?:\([^()]*\)[^()]*)*)\)/.exec(message)?.[1]?.trim() || null;
}

/** The label (and, for archive rules, the rule) of one denial; the code in small type after it. */
export function DenialReason({ reason, message }: { reason: string; message: string }) {
  const rule = refusingRule(reason, message);
  return (
    <span className="denial-reason" data-reason={reason}>
      <strong className="denial-label">{denialLabel(reason)}</strong>
      {rule && <span className="denial-rule">: {rule}</span>} <span className="muted small mono">{reason}</span>
    </span>
  );
}
