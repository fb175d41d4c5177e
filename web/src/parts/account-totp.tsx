// The signed-in user's second factor: enrol (QR code of the otpauth:// address, drawn here from
// the secret the server handed out, plus the secret as text for typing in), confirm with a first
// code, then the recovery codes shown once; later: how many are left, a new set, turning it off
// (both with the password). Never stores the secret or a code in the browser beyond this view.
import { useEffect, useState, type FormEvent } from 'react';
import QRCode from 'qrcode';
import { api, type User } from '../api';
import { useAction, useLoad } from '../hooks';
import { CopyButton } from './copy-button';
import { SubmitWithError } from './form-error';

export function SecondFactor({ user, onChanged }: { user: User; onChanged: () => void }) {
  const [enrolment, setEnrolment] = useState<{ secret: string; otpauthUrl: string } | null>(null);
  const [codes, setCodes] = useState<string[] | null>(null);
  const start = useAction();
  return (
    <section className="card" aria-labelledby="totp-title">
      <h2 id="totp-title">Second factor</h2>
      {codes && <RecoveryCodes codes={codes} onDone={() => setCodes(null)} />}
      {!user.totpEnabled && !enrolment && (
        <>
          <p>Off. With it on, logging in also asks for a code from an authenticator app (or one of your recovery codes).</p>
          <button
            type="button"
            disabled={start.busy}
            onClick={async () => {
              const r = await start.run(() => api<{ secret: string; otpauthUrl: string }>('POST', '/me/totp'));
              if (r) setEnrolment(r);
            }}
          >
            Turn on
          </button>
          {start.error && <p className="error" role="alert">{start.error}</p>}
        </>
      )}
      {!user.totpEnabled && enrolment && (
        <Enrol
          enrolment={enrolment}
          onConfirmed={(recovery) => {
            setEnrolment(null);
            setCodes(recovery);
            onChanged();
          }}
        />
      )}
      {user.totpEnabled && <FactorOn onCodes={setCodes} onOff={onChanged} />}
    </section>
  );
}

function Enrol({ enrolment, onConfirmed }: { enrolment: { secret: string; otpauthUrl: string }; onConfirmed: (codes: string[]) => void }) {
  const [qr, setQr] = useState<string | null>(null);
  const [code, setCode] = useState('');
  const confirm = useAction();
  useEffect(() => {
    QRCode.toString(enrolment.otpauthUrl, { type: 'svg', margin: 2, errorCorrectionLevel: 'M' }).then(
      (svg) => setQr(`data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`),
      () => setQr(null),
    );
  }, [enrolment.otpauthUrl]);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const r = await confirm.run(() => api<{ user: User; recoveryCodes: string[] }>('POST', '/me/totp/confirm', { code: code.replace(/\s/g, '') }));
    if (r) onConfirmed(r.recoveryCodes);
  };
  return (
    <form onSubmit={submit} aria-label="confirm the second factor">
      <p>Scan this with your authenticator app, then type the 6-digit code it shows.</p>
      {qr && <img className="qr" src={qr} width={200} height={200} alt="QR code of the authenticator secret" />}
      <p className="small">
        Or type the secret by hand: <code className="mono" data-totp-secret>{enrolment.secret}</code>
      </p>
      <label>
        Code from your authenticator app
        <input name="totpCode" inputMode="numeric" autoComplete="one-time-code" value={code} onChange={(e) => setCode(e.target.value)} required />
      </label>
      <SubmitWithError label="Confirm" action={confirm} />
    </form>
  );
}

function RecoveryCodes({ codes, onDone }: { codes: string[]; onDone: () => void }) {
  return (
    <div className="notice" role="status" aria-label="recovery codes">
      <p>
        Your recovery codes, shown only now. Keep them somewhere safe: each logs you in once in place of an authenticator code.
      </p>
      <ul className="recovery-codes mono" data-recovery-codes>
        {codes.map((c) => (
          <li key={c}>{c}</li>
        ))}
      </ul>
      <CopyButton text={codes.join('\n')} label="copy the recovery codes" />{' '}
      <button type="button" className="small" onClick={onDone}>
        I have saved them
      </button>
    </div>
  );
}

function FactorOn({ onCodes, onOff }: { onCodes: (codes: string[]) => void; onOff: () => void }) {
  const left = useLoad(() => api<{ left: number }>('GET', '/me/recovery-codes'), []);
  const [password, setPassword] = useState('');
  const regenerate = useAction();
  const off = useAction();
  const n = left.data?.left;
  return (
    <>
      <p>
        On.{' '}
        {n !== undefined && (n === 0 ? 'No recovery code left: make new ones.' : n === 1 ? 'One recovery code left.' : `${n} recovery codes left.`)}
      </p>
      <form className="inline-form" onSubmit={(e) => e.preventDefault()} aria-label="recovery codes and turning off">
        <label>
          Your password
          <input name="factorPassword" type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} />
        </label>
        <button
          type="button"
          disabled={regenerate.busy}
          onClick={async () => {
            if (password === '') return regenerate.setError('type your password first');
            const r = await regenerate.run(() => api<{ recoveryCodes: string[] }>('POST', '/me/recovery-codes', { password }));
            if (r) {
              setPassword('');
              onCodes(r.recoveryCodes);
              left.reload();
            }
          }}
        >
          New recovery codes
        </button>
        <button
          type="button"
          className="danger"
          disabled={off.busy}
          onClick={async () => {
            if (password === '') return off.setError('type your password first');
            const ok = await off.run(async () => {
              await api('DELETE', '/me/totp', { password });
              return true;
            });
            if (ok) {
              setPassword('');
              onOff();
            }
          }}
        >
          Turn off
        </button>
        {(regenerate.error ?? off.error) && (
          <p className="error" role="alert">
            {regenerate.error ?? off.error}
          </p>
        )}
      </form>
    </>
  );
}
