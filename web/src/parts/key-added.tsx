// What the Keys page says after "Add key": that the key was added, and the next step: with a grant,
// the client set-up for that machine (the same text as `borgkeep repo setup`); without one, a
// button that opens the grant form for the new key. It reads the key from the page's current list,
// so a grant added from here turns the message into the set-up. It never shows the key's material
// beyond its fingerprint.
import { useState } from 'react';
import { api, type Grant, type SshEndpoint, type SshKey } from '../api';
import { useLoad } from '../hooks';
import { Link } from '../router';
import { ClientInstructions } from './client-instructions';

export function KeyAdded({ added, grants, onGrant, onDismiss }: { added: SshKey; grants: Grant[]; onGrant: () => void; onDismiss: () => void }) {
  const [setupShown, setSetupShown] = useState(false);
  const server = useLoad(() => api<{ ssh: SshEndpoint | null }>('GET', '/server'), []);
  const grant = grants[0];
  return (
    <section className="card key-added" aria-labelledby="key-added-title" data-key-added={added.name}>
      <h2 id="key-added-title">Key {added.name} added</h2>
      <div role="status">
        {grant ? (
          <p>
            {grant.keyName} may now use <Link href={`/repositories/${encodeURIComponent(grant.repositoryName)}`}>{grant.repositoryName}</Link> as{' '}
            <span className={`badge role-${grant.role}`}>{grant.role}</span>. Next: set up borg (or borgmatic) on the machine that holds this key.
          </p>
        ) : (
          <p>
            Its fingerprint is <span className="mono">{added.fingerprint}</span>. It cannot use any repository yet. Next: grant it a role on a repository; then this
            page shows how to set up the machine.
          </p>
        )}
      </div>
      <div className="dialog-actions">
        {grant ? (
          <button type="button" aria-expanded={setupShown} onClick={() => setSetupShown(!setupShown)}>
            {setupShown ? 'Hide the client set-up' : 'Show the client set-up'}
          </button>
        ) : (
          <button type="button" onClick={onGrant}>
            Grant it a repository
          </button>
        )}
        <button type="button" className="secondary" onClick={onDismiss}>
          Done
        </button>
      </div>
      {grant && setupShown && <ClientInstructions grant={grant} ssh={server.data?.ssh ?? null} />}
    </section>
  );
}
