// The end of every form: its submit button, and the sentence of its last failure read out to
// screen readers (role=alert).

export function FormError({ error }: { error: string | null }) {
  return error ? (
    <p className="error" role="alert">
      {error}
    </p>
  ) : null;
}

export function SubmitWithError({ label, action }: { label: string; action: { busy: boolean; error: string | null } }) {
  return (
    <>
      <button type="submit" disabled={action.busy}>
        {label}
      </button>
      <FormError error={action.error} />
    </>
  );
}
