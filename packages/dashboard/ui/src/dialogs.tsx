import type { RefObject } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { type Api, ApiError } from './api.ts';
import type { Config } from './config.ts';
import {
  bodyOf,
  emptyForm,
  errorsFrom,
  type FormErrors,
  formOf,
  KeyFormFields,
  patchOf,
} from './key-form.tsx';
import type { ApiKey, IssuedKey, Me } from './types.ts';
import { Alert, Dialog, Field, KeyBadges } from './ui.tsx';

const NO_ERRORS: FormErrors = { fields: {}, general: null };

/** Brings the first refused field (or the form's own message) into view and focus. */
function useFirstError(form: RefObject<HTMLFormElement | null>, errors: FormErrors): void {
  useEffect(() => {
    const first = form.current?.querySelector<HTMLElement>('.alert, .field-invalid');
    if (!first) return;
    first.scrollIntoView({ block: 'center' });
    (first.querySelector<HTMLElement>('input:not([disabled]), select, textarea') ?? first).focus();
  }, [form, errors]);
}

/** The key without its secret, for state that outlives the dialog. */
function withoutSecret({ secret: _secret, ...key }: IssuedKey): ApiKey {
  return key;
}

function refusal(error: unknown): FormErrors {
  if (
    error instanceof ApiError &&
    (error.code === 'INVALID_REQUEST' || error.code === 'FORBIDDEN')
  ) {
    return errorsFrom(error.message);
  }
  return { fields: {}, general: error instanceof Error ? error.message : String(error) };
}

/**
 * The secret, once: a copy button and an explicit "stored it" step. When the dialog closes the
 * secret leaves the page's state, and with it the DOM.
 */
function SecretReveal({
  issued,
  action,
  onDone,
}: {
  issued: IssuedKey;
  action: string;
  onDone: () => void;
}) {
  const [copied, setCopied] = useState<'idle' | 'copied' | 'failed'>('idle');
  const [stored, setStored] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(issued.secret);
      setCopied('copied');
    } catch {
      setCopied('failed');
    }
  };
  return (
    <div class="reveal">
      <div class="reveal-key">
        <span class="reveal-name">{issued.name}</span>
        <KeyBadges type={issued.type} environment={issued.environment} />
      </div>
      <Alert tone="warning">
        <strong>Copy this secret now. You will not see it again.</strong> keygate keeps only a
        one-way digest of it: if you lose it, rotate the key to get a new one.
      </Alert>
      <label class="sr-only" for="issued-secret">
        {action === 'created' ? 'Secret of the new key' : 'New secret of the key'}
      </label>
      <div class="secret">
        <input
          id="issued-secret"
          class="secret-value"
          data-testid="secret"
          readOnly
          value={issued.secret}
          spellcheck={false}
          autoComplete="off"
          onFocus={(e) => e.currentTarget.select()}
        />
        <button type="button" class="button button-primary" onClick={copy} data-autofocus>
          {copied === 'copied' ? 'Copied' : 'Copy'}
        </button>
      </div>
      <p class="hint" role="status">
        {copied === 'copied' && 'The secret is on your clipboard.'}
        {copied === 'failed' &&
          'Copying was blocked by the browser: select the secret and copy it yourself.'}
      </p>
      <label class="check check-confirm">
        <input
          type="checkbox"
          checked={stored}
          onChange={(e) => setStored(e.currentTarget.checked)}
        />
        I have stored this secret somewhere safe
      </label>
      <div class="dialog-actions">
        <button type="button" class="button button-primary" disabled={!stored} onClick={onDone}>
          Done
        </button>
      </div>
    </div>
  );
}

export function CreateKeyDialog({
  api,
  config,
  me,
  onClose,
  onCreated,
}: {
  api: Api;
  config: Config;
  me: Me;
  onClose: () => void;
  onCreated: (key: ApiKey) => void;
}) {
  const [state, setState] = useState(() => emptyForm(me));
  const [errors, setErrors] = useState(NO_ERRORS);
  const [busy, setBusy] = useState(false);
  const [issued, setIssued] = useState<IssuedKey | null>(null);
  const form = useRef<HTMLFormElement>(null);
  useFirstError(form, errors);

  if (issued) {
    return (
      <Dialog title="Save your secret key" onClose={onClose} canClose={false}>
        <SecretReveal
          issued={issued}
          action="created"
          onDone={() => {
            setIssued(null);
            onClose();
          }}
        />
      </Dialog>
    );
  }

  const submit = async (event: Event) => {
    event.preventDefault();
    const result = bodyOf(state);
    if ('errors' in result) return setErrors(result.errors);
    setBusy(true);
    try {
      const created = await api.create(result.body);
      setErrors(NO_ERRORS);
      onCreated(withoutSecret(created));
      setIssued(created);
    } catch (error) {
      setErrors(refusal(error));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog title="Create an API key" onClose={onClose} wide>
      <form class="form" onSubmit={submit} noValidate ref={form}>
        {errors.general && <Alert>{errors.general}</Alert>}
        <KeyFormFields
          state={state}
          onChange={setState}
          errors={errors}
          config={config}
          me={me}
          mode="create"
        />
        <div class="dialog-actions">
          <button type="button" class="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" class="button button-primary" disabled={busy}>
            {busy ? 'Creating…' : 'Create key'}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

export function EditKeyDialog({
  api,
  config,
  me,
  apiKey,
  onClose,
  onSaved,
}: {
  api: Api;
  config: Config;
  me: Me;
  apiKey: ApiKey;
  onClose: () => void;
  onSaved: (key: ApiKey) => void;
}) {
  const [state, setState] = useState(() => formOf(apiKey));
  const [errors, setErrors] = useState(NO_ERRORS);
  const [busy, setBusy] = useState(false);
  const form = useRef<HTMLFormElement>(null);
  useFirstError(form, errors);
  const submit = async (event: Event) => {
    event.preventDefault();
    const result = patchOf(state, apiKey);
    if ('errors' in result) return setErrors(result.errors);
    if (Object.keys(result.body).length === 0) return onClose();
    setBusy(true);
    try {
      onSaved(await api.update(apiKey.id, result.body));
    } catch (error) {
      setErrors(refusal(error));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog title={`Edit ${apiKey.name}`} onClose={onClose} wide>
      <form class="form" onSubmit={submit} noValidate ref={form}>
        {errors.general && <Alert>{errors.general}</Alert>}
        <KeyFormFields
          state={state}
          onChange={setState}
          errors={errors}
          config={config}
          me={me}
          mode="edit"
        />
        <div class="dialog-actions">
          <button type="button" class="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" class="button button-primary" disabled={busy}>
            {busy ? 'Saving…' : 'Save changes'}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

const GRACE_CHOICES = [
  { seconds: 0, label: 'Immediately', hint: 'The current secret stops working now.' },
  {
    seconds: 3_600,
    label: 'In 1 hour',
    hint: 'Both secrets work for an hour while you deploy the new one.',
  },
  { seconds: 86_400, label: 'In 24 hours', hint: 'Both secrets work for a day.' },
  { seconds: 604_800, label: 'In 7 days', hint: 'Both secrets work for a week.' },
];

export function RotateDialog({
  api,
  apiKey,
  onClose,
  onRotated,
}: {
  api: Api;
  apiKey: ApiKey;
  onClose: () => void;
  onRotated: (key: ApiKey) => void;
}) {
  const [grace, setGrace] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [issued, setIssued] = useState<IssuedKey | null>(null);

  if (issued) {
    return (
      <Dialog title="Save the new secret" onClose={onClose} canClose={false}>
        <SecretReveal
          issued={issued}
          action="rotated"
          onDone={() => {
            setIssued(null);
            onClose();
          }}
        />
      </Dialog>
    );
  }
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    try {
      const rotated = await api.rotate(apiKey.id, grace);
      onRotated(withoutSecret(rotated));
      setIssued(rotated);
    } catch (failure) {
      setError(failure instanceof Error ? failure.message : String(failure));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog
      title={`Rotate ${apiKey.name}`}
      description="Rotation issues a new secret for this key; its id, scopes and settings stay the same."
      onClose={onClose}
    >
      <form class="form" onSubmit={submit}>
        {error && <Alert>{error}</Alert>}
        <fieldset class="field">
          <legend>When should the current secret stop working?</legend>
          <div class="radio-list">
            {GRACE_CHOICES.map((choice) => (
              <label key={choice.seconds} class="check check-block">
                <input
                  type="radio"
                  name="grace"
                  value={choice.seconds}
                  checked={grace === choice.seconds}
                  onChange={() => setGrace(choice.seconds)}
                  data-autofocus={choice.seconds === 0 ? true : undefined}
                />
                <span>
                  <strong>{choice.label}</strong>
                  <span class="hint">{choice.hint}</span>
                </span>
              </label>
            ))}
          </div>
        </fieldset>
        <div class="dialog-actions">
          <button type="button" class="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" class="button button-primary" disabled={busy}>
            {busy ? 'Rotating…' : 'Rotate key'}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

export function RevokeDialog({
  api,
  apiKey,
  onClose,
  onRevoked,
}: {
  api: Api;
  apiKey: ApiKey;
  onClose: () => void;
  onRevoked: () => void;
}) {
  const [typed, setTyped] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const confirmed = typed.trim() === apiKey.name.trim();
  const submit = async (event: Event) => {
    event.preventDefault();
    if (!confirmed) return;
    setBusy(true);
    try {
      await api.revoke(apiKey.id);
      onRevoked();
    } catch (failure) {
      setError(failure instanceof Error ? failure.message : String(failure));
      setBusy(false);
    }
  };
  return (
    <Dialog
      title={`Revoke ${apiKey.name}`}
      description="Revoking is immediate and cannot be undone: every request with this key will be refused with 401."
      onClose={onClose}
    >
      <form class="form" onSubmit={submit}>
        {error && <Alert>{error}</Alert>}
        <Field label={`Type “${apiKey.name}” to confirm`}>
          {(props) => (
            <input
              {...props}
              name="confirm"
              type="text"
              autoComplete="off"
              spellcheck={false}
              value={typed}
              onInput={(e) => setTyped(e.currentTarget.value)}
              data-autofocus
            />
          )}
        </Field>
        <div class="dialog-actions">
          <button type="button" class="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" class="button button-danger" disabled={!confirmed || busy}>
            {busy ? 'Revoking…' : 'Revoke key'}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
