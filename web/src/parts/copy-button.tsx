// A Copy button for a secret shown once (a new API token, recovery codes): copies to the
// clipboard and says so for a moment (role=status, so screen readers hear it too).
import { useState } from 'react';

export function CopyButton({ text, label }: { text: string; label: string }) {
  const [state, setState] = useState<'idle' | 'copied' | 'failed'>('idle');
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setState('copied');
      setTimeout(() => setState('idle'), 2000);
    } catch {
      setState('failed');
    }
  };
  return (
    <>
      <button type="button" className="small" onClick={copy} aria-label={label}>
        Copy
      </button>
      <span role="status" className="muted small">
        {state === 'copied' ? ' Copied.' : state === 'failed' ? ' The browser did not allow copying: select the text and copy it by hand.' : ''}
      </span>
    </>
  );
}
