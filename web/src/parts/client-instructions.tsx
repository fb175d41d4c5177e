// Copy-paste set-up for the machine that holds a grant's key, as the server writes it
// (GET /repositories/{name}/setup, the same text as `borgkeep repo setup`): the known_hosts lines,
// shell commands (borg init only while the repository is not initialised), a borgmatic config in
// the 1.7 format (Debian 12) or the flat 1.8 format, picked by a switch, and a Vorta hint. The
// console never builds a snippet itself, so it cannot drift from the CLI's.
import { useId, useState } from 'react';
import { api, type Grant, type SshEndpoint } from '../api';
import { useLoad } from '../hooks';

type Format = '1.7' | '1.8';

interface ClientSetup {
  initialized: boolean;
  encryption: string;
  encryptionReason: string;
  url: string;
  knownHosts: string;
  shell: string;
  borgmatic: Record<Format, string>;
  run: Record<Format, string>;
  vorta: string;
}

export function ClientInstructions({ grant, ssh, initialized }: { grant: Grant; ssh: SshEndpoint | null; initialized?: boolean }) {
  const [format, setFormat] = useState<Format>('1.8');
  const [identityFile, setIdentityFile] = useState('');
  const [configDir, setConfigDir] = useState('/etc/borgmatic');
  const id = useId();
  const query = new URLSearchParams({ key: String(grant.keyId), ...(identityFile.trim() && { identityFile }), ...(configDir.trim() && { configDir }) });
  const setup = useLoad(
    () => api<ClientSetup>('GET', `/repositories/${encodeURIComponent(grant.repositoryName)}/setup?${query}`),
    [grant.repositoryName, grant.keyId, grant.role, identityFile, configDir, initialized],
  );
  const s = setup.data;
  return (
    <section className="instructions" aria-label={`client set-up for ${grant.keyName}`}>
      {ssh && ssh.fingerprints.length > 0 && (
        <p className="muted small">
          Host key fingerprints to compare on the first connection: {ssh.fingerprints.map((f) => `${f.fingerprint} (${f.type})`).join(', ')}
        </p>
      )}
      {s && (
        <p className="small">
          Encryption: <code>{s.encryption}</code>: {s.encryptionReason}.
        </p>
      )}
      <div className="inline-form">
        <label>
          Key file on the client <span className="muted">(empty: ssh's default key)</span>
          <input name="identityFile" value={identityFile} placeholder="/root/.ssh/id_ed25519_backup" onChange={(e) => setIdentityFile(e.target.value)} spellCheck={false} />
        </label>
        <label>
          borgmatic folder on the client
          <input name="configDir" value={configDir} onChange={(e) => setConfigDir(e.target.value)} spellCheck={false} />
        </label>
      </div>
      {setup.error && (
        <p className="error" role="alert">
          {setup.error.message}
        </p>
      )}
      {s && (
        <>
          <Snippet title="known_hosts lines" text={s.knownHosts || '# the server has no host keys yet'} />
          <Snippet title="Shell" text={s.shell} />
          <fieldset className="format-switch">
            <legend>borgmatic version on the client</legend>
            {(['1.7', '1.8'] as const).map((f) => (
              <label key={f}>
                <input type="radio" name={`${id}-format`} value={f} checked={format === f} onChange={() => setFormat(f)} />
                {f === '1.7' ? ' 1.7 (Debian 12)' : ' 1.8 and later'}
              </label>
            ))}
          </fieldset>
          <Snippet title={`borgmatic ${format}`} text={s.borgmatic[format]} />
          <p className="small">
            Run it with <code>{s.run[format]}</code>.
          </p>
          <p className="small muted">{s.vorta}</p>
        </>
      )}
    </section>
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
    <figure className="snippet" data-snippet={title}>
      <figcaption>
        {title}{' '}
        <button type="button" className="small" onClick={copy} aria-label={`copy the ${title} snippet`}>
          {copied ? 'Copied' : 'Copy'}
        </button>
      </figcaption>
      <pre tabIndex={0} aria-label={`${title} snippet`}>
        <code>{text}</code>
      </pre>
    </figure>
  );
}
