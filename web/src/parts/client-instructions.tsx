// Copy-paste set-up for the machine that holds a grant's key: borg init (for full keys),
// borg create, and a borgmatic snippet, with the repository URL of this server.
import { useState } from 'react';
import type { Grant, SshEndpoint } from '../api';

export function repositoryUrl(ssh: SshEndpoint | null, repository: string): string {
  const host = ssh?.host ?? location.hostname;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  const port = ssh?.port ?? 2222;
  return `ssh://${ssh?.user ?? 'borg'}@${shownHost}:${port}/./${repository}`;
}

export function ClientInstructions({ grant, ssh }: { grant: Grant; ssh: SshEndpoint | null }) {
  const url = repositoryUrl(ssh, grant.repositoryName);
  const writes = grant.role === 'append' || grant.role === 'full';
  const shell = [
    `# on the machine that holds key '${grant.keyName}' (${grant.keyFingerprint})`,
    ...(grant.role === 'full' ? [`borg init --encryption repokey ${url}`] : ['# borg init needs a full key; this key has the ' + grant.role + ' role']),
    ...(writes ? [`borg create --stats ${url}::'{hostname}-{now}' ~/Documents`] : [`borg list ${url}`]),
  ].join('\n');
  const borgmatic = [
    '# /etc/borgmatic/config.yaml',
    'source_directories:',
    '    - /home',
    '    - /etc',
    'repositories:',
    `    - path: ${url}`,
    `      label: ${grant.repositoryName}`,
    'encryption_passcommand: cat /root/.borg-passphrase',
    ...(grant.role === 'append' ? ['# an append key cannot prune: run pruning from a machine with a prune or full key'] : ['keep_daily: 7', 'keep_weekly: 4']),
  ].join('\n');
  return (
    <div className="instructions" aria-label={`client instructions for ${grant.keyName}`}>
      {ssh && ssh.fingerprints.length > 0 && (
        <p className="muted small">
          Host key fingerprints to compare on the first connection: {ssh.fingerprints.map((f) => `${f.fingerprint} (${f.type})`).join(', ')}
        </p>
      )}
      <Snippet title="Shell" text={shell} />
      <Snippet title="borgmatic" text={borgmatic} />
    </div>
  );
}

function Snippet({ title, text }: { title: string; text: string }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setCopied(true);
      setTimeout(() => setCopied(false), 1500);
    } catch {
      setCopied(false);
    }
  };
  return (
    <figure className="snippet">
      <figcaption>
        {title}{' '}
        <button type="button" className="small" onClick={copy} aria-label={`copy the ${title} snippet`}>
          {copied ? 'Copied' : 'Copy'}
        </button>
      </figcaption>
      <pre tabIndex={0}>
        <code>{text}</code>
      </pre>
    </figure>
  );
}
