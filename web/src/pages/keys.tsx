// SSH keys: add one from its public key line (optionally with a first grant), revoke; each key's
// grants (edit one, add one on another repository) and when it was last used.
import { Fragment, useState, type FormEvent } from 'react';
import { api, type GrantRole, type Repository, type SshKey } from '../api';
import { can, useMe } from '../app';
import { Time } from '../format';
import { useAction, useLoad } from '../hooks';
import { SubmitWithError } from '../parts/form-error';
import { AddGrantForKey, GrantEditor, type GrantWithRules } from '../parts/grant-editor';
import { KeyAdded } from '../parts/key-added';
import { Link } from '../router';

/** A key as GET /keys lists it: with its grants and the start of its newest session. */
type ListedKey = SshKey & { lastUsedAt: string | null; grants: GrantWithRules[] };
/** What is open under a key's row: the editor of one of its grants, or a new grant. */
type Open = { keyId: number; repository: string | null } | null;

export function KeysPage() {
  const me = useMe();
  const keys = useLoad(() => api<{ keys: ListedKey[] }>('GET', '/keys'), []);
  const revoke = useAction();
  const [open, setOpen] = useState<Open>(null);
  /** The key "Add key" just added: the page says so and what to do next. */
  const [added, setAdded] = useState<SshKey | null>(null);
  const operator = can(me, 'operator');
  const done = () => {
    setOpen(null);
    keys.reload();
  };
  const list = keys.data?.keys ?? [];
  return (
    <>
      <h1>Keys</h1>
      {keys.error && <p className="error">{keys.error.message}</p>}
      {keys.data && list.length === 0 && (
        <section className="empty">
          <h2>No keys yet</h2>
          <p>Each machine that backs up gets its own SSH key. Paste its public key (the line in <code>~/.ssh/id_ed25519.pub</code>) below and grant it a role on a repository.</p>
        </section>
      )}
      {list.length > 0 && (
        <div className="table-wrap">
          <table className="cards">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Fingerprint</th>
                <th scope="col">Grants</th>
                <th scope="col">Last used</th>
                <th scope="col">Added</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {list.map((k) => (
                <Fragment key={k.id}>
                  <tr data-key={k.name} className={k.revoked ? 'revoked' : ''}>
                    <th scope="row">
                      {k.name}
                      {k.comment && <div className="muted small">{k.comment}</div>}
                    </th>
                    <td className="mono small" data-label="Fingerprint">
                      {k.fingerprint} <span className="muted">({k.type}, {k.bits} bits)</span>
                    </td>
                    <td data-label="Grants">
                      {k.grants.length === 0 ? (
                        <span className="muted">none</span>
                      ) : (
                        <ul className="key-grants">
                          {k.grants.map((g) => (
                            <li key={g.repositoryName} data-grant={g.repositoryName}>
                              <Link href={`/repositories/${encodeURIComponent(g.repositoryName)}`}>{g.repositoryName}</Link> <span className={`badge role-${g.role}`}>{g.role}</span>
                              {g.expiresAt && (
                                <span className="muted small">
                                  {' '}
                                  expires <Time at={g.expiresAt} />
                                </span>
                              )}
                              {operator && (
                                <button
                                  type="button"
                                  className="small secondary"
                                  aria-label={`Edit the grant of ${k.name} on ${g.repositoryName}`}
                                  aria-expanded={open?.keyId === k.id && open.repository === g.repositoryName}
                                  onClick={() => setOpen({ keyId: k.id, repository: g.repositoryName })}
                                >
                                  Edit
                                </button>
                              )}
                            </li>
                          ))}
                        </ul>
                      )}
                    </td>
                    <td data-label="Last used">
                      <Time at={k.lastUsedAt} />
                    </td>
                    <td data-label="Added">
                      <Time at={k.createdAt} />
                    </td>
                    <td>
                      {k.revoked ? (
                        <span className="badge late">
                          revoked <Time at={k.revokedAt} />
                        </span>
                      ) : (
                        operator && (
                          <span className="row-actions">
                            <button
                              type="button"
                              className="small"
                              aria-label={`Add grant for ${k.name}`}
                              aria-expanded={open?.keyId === k.id && open.repository === null}
                              onClick={() => setOpen({ keyId: k.id, repository: null })}
                            >
                              Add grant
                            </button>
                            <button
                              type="button"
                              className="small danger"
                              disabled={revoke.busy}
                              onClick={async () => {
                                if (!confirm(`Revoke key ${k.name}? Its grants go and its sessions are refused, for good.`)) return;
                                if (await revoke.run(() => api('DELETE', `/keys/${k.id}`))) keys.reload();
                              }}
                            >
                              Revoke
                            </button>
                          </span>
                        )
                      )}
                    </td>
                  </tr>
                  {open?.keyId === k.id && (
                    <tr className="editor-row">
                      <td colSpan={6}>
                        {open.repository === null ? (
                          <AddGrantForKey keyId={k.id} keyName={k.name} granted={k.grants.map((g) => g.repositoryName)} onAdded={done} onCancel={() => setOpen(null)} />
                        ) : (
                          k.grants
                            .filter((g) => g.repositoryName === open.repository)
                            .map((g) => <GrantEditor key={g.repositoryName} grant={g} onSaved={done} onCancel={() => setOpen(null)} />)
                        )}
                      </td>
                    </tr>
                  )}
                </Fragment>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {revoke.error && <p className="error">{revoke.error}</p>}
      {added && (
        <KeyAdded
          key={added.id}
          added={added}
          grants={list.find((k) => k.id === added.id)?.grants ?? []}
          // The grant form opens in the key's row and takes the keyboard (its select has autoFocus).
          onGrant={() => setOpen({ keyId: added.id, repository: null })}
          onDismiss={() => setAdded(null)}
        />
      )}
      {can(me, 'operator') && (
        <AddKey
          onAdded={(key) => {
            setAdded(key);
            keys.reload();
          }}
        />
      )}
    </>
  );
}

function AddKey({ onAdded }: { onAdded: (key: SshKey) => void }) {
  const repos = useLoad(() => api<{ repositories: Repository[] }>('GET', '/repositories'), []);
  const [name, setName] = useState('');
  const [line, setLine] = useState('');
  const [repository, setRepository] = useState('');
  const [role, setRole] = useState<GrantRole>('append');
  const action = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const r = await action.run(() =>
      api<{ key: SshKey }>('POST', '/keys', { name: name.trim(), publicKey: line.trim(), ...(repository !== '' && { grant: { repository, role } }) }),
    );
    if (r) {
      setName('');
      setLine('');
      setRepository('');
      onAdded(r.key);
    }
  };
  return (
    <form className="card" onSubmit={submit} aria-labelledby="add-key">
      <h2 id="add-key">Add a key</h2>
      <label>
        Name <span className="muted">(the machine, e.g. laptop)</span>
        <input name="keyName" value={name} onChange={(e) => setName(e.target.value)} required />
      </label>
      <label>
        Public key line
        <textarea name="publicKey" rows={3} placeholder="ssh-ed25519 AAAA… user@host" value={line} onChange={(e) => setLine(e.target.value)} required spellCheck={false} />
      </label>
      <div className="inline-form">
        <label>
          Grant on <span className="muted">(optional)</span>
          <select name="grantRepository" value={repository} onChange={(e) => setRepository(e.target.value)}>
            <option value="">no grant yet</option>
            {(repos.data?.repositories ?? []).map((r) => (
              <option key={r.id} value={r.name}>
                {r.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Role
          <select name="grantRole" value={role} onChange={(e) => setRole(e.target.value as GrantRole)} disabled={repository === ''}>
            <option value="append">append (backups only)</option>
            <option value="read">read</option>
            <option value="prune">prune</option>
            <option value="full">full (needed for borg init)</option>
          </select>
        </label>
      </div>
      <SubmitWithError label="Add key" action={action} />
    </form>
  );
}
