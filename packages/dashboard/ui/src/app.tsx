import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { type Api, ApiError, createApi, pastedKey } from './api.ts';
import type { Config } from './config.ts';
import { CreateKeyDialog } from './dialogs.tsx';
import { KeyList } from './key-list.tsx';
import { KeyPage } from './key-page.tsx';
import { useRoute } from './router.ts';
import type { ApiKey, Me } from './types.ts';
import { Alert, Field, Spinner } from './ui.tsx';

type Auth =
  | { state: 'checking' }
  | { state: 'signed-out'; message: string | null }
  | { state: 'signed-in'; me: Me; via: 'key' | 'page' | 'app' };

function explain(error: unknown, adminScope: string): string {
  if (!(error instanceof ApiError)) return String(error);
  if (error.status === 401)
    return 'That key was not accepted: it is unknown, revoked, expired or mistyped.';
  if (error.code === 'INSUFFICIENT_SCOPE' || error.status === 403) {
    return `That key cannot manage keys: it needs the ${adminScope} scope, and must be a secret key.`;
  }
  return error.message;
}

function SignIn({
  config,
  message,
  onSignIn,
}: {
  config: Config;
  message: string | null;
  onSignIn: (key: string) => Promise<void>;
}) {
  const [key, setKey] = useState('');
  const [busy, setBusy] = useState(false);
  const form = useRef<HTMLFormElement>(null);
  useEffect(() => form.current?.querySelector('input')?.focus(), []);
  const sessions = config.pageSessions;
  const submit = async (event: Event) => {
    // With page sessions the browser posts the form itself: the key goes to the server once.
    if (sessions) {
      setBusy(true);
      return;
    }
    event.preventDefault();
    if (!key.trim()) return;
    setBusy(true);
    await onSignIn(key.trim());
    setKey('');
    setBusy(false);
  };
  return (
    <main class="signin">
      <div class="signin-card card">
        <div class="brand brand-large" aria-hidden="true">
          <span class="brand-mark">k</span>
        </div>
        <h1>{config.title}</h1>
        <p class="muted">Create, rotate and revoke the keys that call your API.</p>
        {message && <Alert>{message}</Alert>}
        <form
          class="form"
          onSubmit={submit}
          ref={form}
          {...(sessions ? { method: 'post', action: sessions.signInPath } : {})}
        >
          <Field
            label="Admin key"
            hint={
              sessions
                ? `A secret key with the ${config.adminScope} scope. It opens a session for this browser, which acts as the key until you sign out; the key itself is not kept.`
                : `A secret key with the ${config.adminScope} scope. It stays in this tab only and is forgotten when you close it.`
            }
          >
            {(props) => (
              <input
                {...props}
                name="key"
                type="password"
                autoComplete="off"
                spellcheck={false}
                required
                placeholder="sk_live_…"
                value={key}
                onInput={(e) => setKey(e.currentTarget.value)}
              />
            )}
          </Field>
          <button
            type="submit"
            class="button button-primary button-block"
            disabled={busy || !key.trim()}
          >
            {busy ? 'Signing in…' : sessions ? 'Sign in' : 'Sign in with key'}
          </button>
        </form>
        {config.signInUrl && (
          <>
            <div class="divider">
              <span>or</span>
            </div>
            <a class="button button-block" href={config.signInUrl}>
              Sign in with your account
            </a>
          </>
        )}
      </div>
    </main>
  );
}

type Via = 'key' | 'page' | 'app';

function Header({
  me,
  via,
  signOutPath,
  onSignOut,
}: {
  me: Me;
  via: Via;
  signOutPath: string | null;
  onSignOut: () => void;
}) {
  return (
    <header class="topbar">
      <div class="topbar-inner">
        <span class="brand">
          <span class="brand-mark" aria-hidden="true">
            k
          </span>
          keygate
        </span>
        <span class="org" title="Organisation">
          {me.ownerId}
        </span>
        <span class="whoami" data-testid="whoami">
          {via === 'app' ? (
            <>Signed in with your session</>
          ) : (
            <>
              Signed in as <strong>{me.name}</strong> <code>{me.start}…</code>
            </>
          )}
        </span>
        {via === 'key' && (
          <button type="button" class="button button-small" onClick={onSignOut}>
            Sign out
          </button>
        )}
        {via === 'page' && signOutPath && (
          <form method="post" action={signOutPath} class="signout">
            <button type="submit" class="button button-small">
              Sign out
            </button>
          </form>
        )}
      </div>
    </header>
  );
}

function Keys({
  api,
  config,
  me,
  navigate,
}: {
  api: Api;
  config: Config;
  me: Me;
  navigate: Parameters<typeof KeyList>[0]['navigate'];
}) {
  const [keys, setKeys] = useState<ApiKey[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [creating, setCreating] = useState(false);
  const load = useCallback(() => {
    api.list().then(
      (loaded) => {
        setKeys(loaded);
        setError(null);
      },
      (failure: unknown) => setError(failure instanceof Error ? failure.message : String(failure)),
    );
  }, [api]);
  useEffect(load, [load]);
  return (
    <div class="page">
      <div class="page-header">
        <div>
          <h1>{config.title}</h1>
          <p class="subtitle">
            Keys let servers and apps call the API as your organisation. Treat secret keys like
            passwords.
          </p>
        </div>
        <div class="actions">
          <button type="button" class="button button-primary" onClick={() => setCreating(true)}>
            Create key
          </button>
        </div>
      </div>
      {error && <Alert>{error}</Alert>}
      {!keys && !error && <Spinner label="Loading keys…" />}
      {keys && (
        <KeyList
          keys={keys}
          base={config.mountPath}
          navigate={navigate}
          onCreate={() => setCreating(true)}
        />
      )}
      {creating && (
        <CreateKeyDialog
          api={api}
          config={config}
          me={me}
          onClose={() => setCreating(false)}
          onCreated={(key) => setKeys((current) => [key, ...(current ?? [])])}
        />
      )}
    </div>
  );
}

export function App({ config }: { config: Config }) {
  // The server says whether this request has a session: without one, nothing is asked (no 401).
  const pasted = config.view === 'page' && pastedKey.get() !== null;
  const [auth, setAuth] = useState<Auth>(() =>
    pasted || (config.view === 'page' && config.session)
      ? { state: 'checking' }
      : { state: 'signed-out', message: config.message },
  );
  const [route, navigate] = useRoute(config.mountPath);
  const signOut = useCallback((message: string | null) => {
    pastedKey.clear();
    setAuth({ state: 'signed-out', message });
  }, []);
  const api = useMemo(
    () =>
      createApi(config, () =>
        signOut('You were signed out: the key or session is no longer valid.'),
      ),
    [config, signOut],
  );

  useEffect(() => {
    if (auth.state !== 'checking') return;
    const via = pasted ? 'key' : config.session === 'page' ? 'page' : 'app';
    api.me().then(
      (me) => setAuth({ state: 'signed-in', me, via }),
      (error: unknown) => {
        if (pasted) return signOut(explain(error, config.adminScope));
        if (error instanceof ApiError && error.status === 403) {
          return signOut(
            via === 'page'
              ? explain(error, config.adminScope)
              : 'You are signed in, but your account cannot manage API keys.',
          );
        }
        signOut(error instanceof ApiError && error.status === 401 ? null : String(error));
      },
    );
  }, [api, auth.state, config, pasted, signOut]);

  if (auth.state === 'checking') return <Spinner label="Checking your sign-in…" />;
  if (auth.state === 'signed-out') {
    return (
      <SignIn
        config={config}
        message={auth.message}
        onSignIn={async (key) => {
          pastedKey.set(key);
          try {
            setAuth({ state: 'signed-in', me: await api.me(), via: 'key' });
          } catch (error) {
            signOut(explain(error, config.adminScope));
          }
        }}
      />
    );
  }
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <Header
        me={auth.me}
        via={auth.via}
        signOutPath={config.pageSessions?.signOutPath ?? null}
        onSignOut={() => signOut(null)}
      />
      <main id="main" class="main" tabIndex={-1}>
        {route.name === 'key' ? (
          <KeyPage api={api} config={config} me={auth.me} keyId={route.id} navigate={navigate} />
        ) : (
          <Keys api={api} config={config} me={auth.me} navigate={navigate} />
        )}
      </main>
    </>
  );
}
