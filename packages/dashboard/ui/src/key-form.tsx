import type { Config } from './config.ts';
import { formatDate, splitList } from './format.ts';
import type { ApiKey, Environment, KeyType, Me } from './types.ts';
import { Field } from './ui.tsx';

export type Expiry = 'keep' | 'never' | '7' | '30' | '90' | '365' | 'custom';

export interface FormState {
  name: string;
  type: KeyType;
  environment: Environment;
  scopes: string[];
  resourceMode: 'all' | 'some';
  resources: string;
  expiry: Expiry;
  customExpiry: string;
  ips: string;
  referrers: string;
  endpoints: string;
  perSecond: string;
  burst: string;
  daily: string;
  metadata: string;
}

/** Messages by field (`scopes`, `rateLimit`, ...) and the rest, from the API's `field: message; ...`. */
export interface FormErrors {
  fields: Record<string, string>;
  general: string | null;
}

const FIELDS = [
  'name',
  'type',
  'environment',
  'scopes',
  'resources',
  'expiresAt',
  'restrictions',
  'rateLimit',
  'metadata',
];

export function errorsFrom(message: string): FormErrors {
  const fields: Record<string, string> = {};
  const general: string[] = [];
  for (const part of message.split('; ')) {
    const match = /^([A-Za-z]+)(\.[\w.]+)?:\s*(.+)$/.exec(part);
    const field = match?.[1];
    if (match && field && FIELDS.includes(field)) {
      const detail = match[2] ? `${match[2].slice(1)}: ${match[3]}` : match[3]!;
      fields[field] = fields[field] ? `${fields[field]}; ${detail}` : detail;
    } else {
      general.push(part);
    }
  }
  return { fields, general: general.length > 0 ? general.join('; ') : null };
}

export function emptyForm(me: Me): FormState {
  return {
    name: '',
    type: 'secret',
    environment: me.environment,
    scopes: [],
    resourceMode: me.resources === null ? 'all' : 'some',
    resources: me.resources?.join('\n') ?? '',
    expiry: me.expiresAt ? 'custom' : 'never',
    customExpiry: me.expiresAt ? toLocalInput(me.expiresAt) : '',
    ips: '',
    referrers: '',
    endpoints: '',
    perSecond: '',
    burst: '',
    daily: '',
    metadata: '',
  };
}

export function formOf(key: ApiKey): FormState {
  return {
    name: key.name,
    type: key.type,
    environment: key.environment,
    scopes: [...key.scopes],
    resourceMode: key.resources === null ? 'all' : 'some',
    resources: key.resources?.join('\n') ?? '',
    expiry: key.expiresAt ? 'keep' : 'never',
    customExpiry: key.expiresAt ? toLocalInput(key.expiresAt) : '',
    ips: key.restrictions?.ips?.join('\n') ?? '',
    referrers: key.restrictions?.referrers?.join('\n') ?? '',
    endpoints: key.restrictions?.endpoints?.join('\n') ?? '',
    perSecond: key.rateLimit?.perSecond?.toString() ?? '',
    burst: key.rateLimit?.burst?.toString() ?? '',
    daily: key.rateLimit?.daily?.toString() ?? '',
    metadata: key.metadata ? JSON.stringify(key.metadata, null, 2) : '',
  };
}

function toLocalInput(iso: string): string {
  const date = new Date(iso);
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60_000);
  return local.toISOString().slice(0, 16);
}

/** A number as typed, or the text itself so the API can say what is wrong with it. */
function numberOrText(text: string): number | string | undefined {
  const trimmed = text.trim();
  if (trimmed === '') return undefined;
  const value = Number(trimmed);
  return Number.isFinite(value) ? value : trimmed;
}

function expiresAt(state: FormState): string | null | undefined {
  switch (state.expiry) {
    case 'keep':
      return undefined;
    case 'never':
      return null;
    case 'custom':
      return state.customExpiry ? new Date(state.customExpiry).toISOString() : '';
    default:
      return new Date(Date.now() + Number(state.expiry) * 86_400_000).toISOString();
  }
}

function restrictionsOf(state: FormState) {
  const restrictions = {
    ips: splitList(state.ips),
    referrers: splitList(state.referrers),
    endpoints: state.endpoints
      .split('\n')
      .map((line) => line.trim())
      .filter(Boolean),
  };
  const given = Object.entries(restrictions).filter(([, list]) => list.length > 0);
  return given.length > 0 ? Object.fromEntries(given) : null;
}

function rateLimitOf(state: FormState) {
  const limit = {
    perSecond: numberOrText(state.perSecond),
    burst: numberOrText(state.burst),
    daily: numberOrText(state.daily),
  };
  const given = Object.entries(limit).filter(([, value]) => value !== undefined);
  return given.length > 0 ? Object.fromEntries(given) : null;
}

/** The request body, or the message for a field the page can check before sending. */
export function bodyOf(
  state: FormState,
): { body: Record<string, unknown> } | { errors: FormErrors } {
  let metadata: unknown = null;
  if (state.metadata.trim() !== '') {
    try {
      metadata = JSON.parse(state.metadata);
    } catch {
      return { errors: { fields: { metadata: 'must be a JSON object' }, general: null } };
    }
  }
  const body: Record<string, unknown> = {
    name: state.name,
    type: state.type,
    environment: state.environment,
    scopes: state.scopes,
    resources: state.resourceMode === 'all' ? null : splitList(state.resources),
    restrictions: restrictionsOf(state),
    rateLimit: rateLimitOf(state),
    metadata,
  };
  const expiry = expiresAt(state);
  if (expiry !== undefined) body.expiresAt = expiry;
  return { body };
}

/** Only what changed, as a PATCH body (type and environment cannot change). */
export function patchOf(
  state: FormState,
  key: ApiKey,
): { body: Record<string, unknown> } | { errors: FormErrors } {
  const result = bodyOf(state);
  if ('errors' in result) return result;
  const { type: _type, environment: _environment, ...fields } = result.body;
  const current: Record<string, unknown> = {
    name: key.name,
    scopes: key.scopes,
    resources: key.resources,
    restrictions: key.restrictions,
    rateLimit: key.rateLimit,
    metadata: key.metadata,
    expiresAt: key.expiresAt,
  };
  const changed = Object.entries(fields).filter(
    ([field, value]) => JSON.stringify(value) !== JSON.stringify(current[field]),
  );
  return { body: Object.fromEntries(changed) };
}

interface Props {
  state: FormState;
  onChange: (state: FormState) => void;
  errors: FormErrors;
  config: Config;
  me: Me;
  mode: 'create' | 'edit';
}

/** Every option a key has, with the signed-in admin's own bounds shown where they apply. */
export function KeyFormFields({ state, onChange, errors, config, me, mode }: Props) {
  const set = (patch: Partial<FormState>) => onChange({ ...state, ...patch });
  const offered = [...new Set([...config.scopes, ...me.scopes, ...state.scopes])];
  const environments: Environment[] =
    config.environments.length > 0 ? config.environments : ['live', 'test'];
  const fieldError = (name: string) => errors.fields[name];

  return (
    <>
      <Field
        label="Name"
        hint="Something that says where the key is used, e.g. “Reporting (prod)”."
        error={fieldError('name')}
      >
        {(props) => (
          <input
            {...props}
            name="name"
            type="text"
            autoComplete="off"
            maxLength={200}
            value={state.name}
            onInput={(e) => set({ name: e.currentTarget.value })}
            data-autofocus
          />
        )}
      </Field>

      {mode === 'create' && (
        <div class="field-row">
          <fieldset class="field">
            <legend>Type</legend>
            <div class="segmented">
              {(['secret', 'public'] as const).map((type) => (
                <label key={type} class={state.type === type ? 'segment segment-on' : 'segment'}>
                  <input
                    type="radio"
                    name="type"
                    value={type}
                    checked={state.type === type}
                    onChange={() =>
                      set({
                        type,
                        scopes:
                          type === 'public'
                            ? state.scopes.filter((s) => config.publicScopes.includes(s))
                            : state.scopes,
                      })
                    }
                  />
                  {type === 'secret' ? 'Secret' : 'Public'}
                </label>
              ))}
            </div>
            <p class="hint">
              {state.type === 'secret'
                ? 'For servers. Never put a secret key in a browser or an app.'
                : `Safe in browsers; limited to ${config.publicScopes.join(', ')}.`}
            </p>
            {fieldError('type') && <p class="field-error">{fieldError('type')}</p>}
          </fieldset>
          <fieldset class="field">
            <legend>Environment</legend>
            <div class="segmented">
              {environments.map((environment) => (
                <label
                  key={environment}
                  class={state.environment === environment ? 'segment segment-on' : 'segment'}
                >
                  <input
                    type="radio"
                    name="environment"
                    value={environment}
                    checked={state.environment === environment}
                    onChange={() => set({ environment })}
                  />
                  {environment === 'live' ? 'Live' : 'Test'}
                </label>
              ))}
            </div>
            <p class="hint">You can create keys for the {me.environment} environment.</p>
            {fieldError('environment') && <p class="field-error">{fieldError('environment')}</p>}
          </fieldset>
        </div>
      )}

      <fieldset class={fieldError('scopes') ? 'field field-invalid' : 'field'}>
        <legend>Scopes</legend>
        <div class="scope-grid">
          {offered.map((scope) => {
            const beyond = !me.scopes.includes(scope);
            const secretOnly = state.type === 'public' && !config.publicScopes.includes(scope);
            const note = beyond ? 'not in your access' : secretOnly ? 'secret keys only' : '';
            return (
              <label key={scope} class={note ? 'check check-off' : 'check'}>
                <input
                  type="checkbox"
                  name="scopes"
                  value={scope}
                  checked={state.scopes.includes(scope)}
                  disabled={note !== '' && !state.scopes.includes(scope)}
                  onChange={(e) =>
                    set({
                      scopes: e.currentTarget.checked
                        ? [...state.scopes, scope]
                        : state.scopes.filter((s) => s !== scope),
                    })
                  }
                />
                <code>{scope}</code>
                {note && <span class="check-note">{note}</span>}
              </label>
            );
          })}
        </div>
        {offered.length === 0 && <p class="hint">You hold no scopes to grant.</p>}
        {fieldError('scopes') && <p class="field-error">{fieldError('scopes')}</p>}
      </fieldset>

      <fieldset class={fieldError('resources') ? 'field field-invalid' : 'field'}>
        <legend>Resource access</legend>
        <div class="radio-list">
          <label class={me.resources !== null ? 'check check-off' : 'check'}>
            <input
              type="radio"
              name="resourceMode"
              checked={state.resourceMode === 'all'}
              disabled={me.resources !== null && state.resourceMode !== 'all'}
              onChange={() => set({ resourceMode: 'all' })}
            />
            All resources of the organisation
            {me.resources !== null && <span class="check-note">not in your access</span>}
          </label>
          <label class="check">
            <input
              type="radio"
              name="resourceMode"
              checked={state.resourceMode === 'some'}
              onChange={() => set({ resourceMode: 'some' })}
            />
            Only these resources
          </label>
        </div>
        {state.resourceMode === 'some' && (
          <Field label="Resources" hint="One per line, e.g. website:w_123, link:l_9 or website:*.">
            {(props) => (
              <textarea
                {...props}
                name="resources"
                rows={3}
                spellcheck={false}
                value={state.resources}
                onInput={(e) => set({ resources: e.currentTarget.value })}
              />
            )}
          </Field>
        )}
        {fieldError('resources') && <p class="field-error">{fieldError('resources')}</p>}
      </fieldset>

      <Field
        label="Expires"
        hint={
          me.expiresAt
            ? `Your own key expires ${formatDate(me.expiresAt)}; keys you create cannot outlive it.`
            : undefined
        }
        error={fieldError('expiresAt')}
      >
        {(props) => (
          <div class="expiry">
            <select
              {...props}
              name="expiry"
              value={state.expiry}
              onChange={(e) => set({ expiry: e.currentTarget.value as Expiry })}
            >
              {mode === 'edit' && state.customExpiry && (
                <option value="keep">
                  Keep ({formatDate(new Date(state.customExpiry).toISOString())})
                </option>
              )}
              <option value="never">Never</option>
              <option value="7">In 7 days</option>
              <option value="30">In 30 days</option>
              <option value="90">In 90 days</option>
              <option value="365">In 1 year</option>
              <option value="custom">On a date…</option>
            </select>
            {state.expiry === 'custom' && (
              <input
                type="datetime-local"
                name="customExpiry"
                aria-label="Expiry date and time"
                value={state.customExpiry}
                onInput={(e) => set({ customExpiry: e.currentTarget.value })}
              />
            )}
          </div>
        )}
      </Field>

      <details
        class="section"
        open={Boolean(
          fieldError('restrictions') || state.ips || state.referrers || state.endpoints,
        )}
      >
        <summary>Restrictions</summary>
        <p class="hint">Lists that are left empty do not restrict.</p>
        <Field
          label="Allowed IP addresses"
          hint="IPs or CIDR ranges, one per line (e.g. 203.0.113.0/24)."
        >
          {(props) => (
            <textarea
              {...props}
              name="ips"
              rows={2}
              spellcheck={false}
              value={state.ips}
              onInput={(e) => set({ ips: e.currentTarget.value })}
            />
          )}
        </Field>
        <Field
          label="Allowed referrers"
          hint="Origins, one per line; * matches part of a host (https://*.example.com)."
        >
          {(props) => (
            <textarea
              {...props}
              name="referrers"
              rows={2}
              spellcheck={false}
              value={state.referrers}
              onInput={(e) => set({ referrers: e.currentTarget.value })}
            />
          )}
        </Field>
        <Field
          label="Allowed endpoints"
          hint="“METHOD /path”, one per line; * matches a segment, /** any suffix."
        >
          {(props) => (
            <textarea
              {...props}
              name="endpoints"
              rows={2}
              spellcheck={false}
              value={state.endpoints}
              onInput={(e) => set({ endpoints: e.currentTarget.value })}
            />
          )}
        </Field>
        {fieldError('restrictions') && <p class="field-error">{fieldError('restrictions')}</p>}
      </details>

      <details
        class="section"
        open={Boolean(fieldError('rateLimit') || state.perSecond || state.burst || state.daily)}
      >
        <summary>Rate limit</summary>
        <p class="hint">Leave empty to use the default for the key’s type.</p>
        <div class="field-row field-row-3">
          <Field label="Per second">
            {(props) => (
              <input
                {...props}
                name="perSecond"
                inputMode="decimal"
                value={state.perSecond}
                onInput={(e) => set({ perSecond: e.currentTarget.value })}
              />
            )}
          </Field>
          <Field label="Burst">
            {(props) => (
              <input
                {...props}
                name="burst"
                inputMode="numeric"
                value={state.burst}
                onInput={(e) => set({ burst: e.currentTarget.value })}
              />
            )}
          </Field>
          <Field label="Per day">
            {(props) => (
              <input
                {...props}
                name="daily"
                inputMode="numeric"
                value={state.daily}
                onInput={(e) => set({ daily: e.currentTarget.value })}
              />
            )}
          </Field>
        </div>
        {fieldError('rateLimit') && <p class="field-error">{fieldError('rateLimit')}</p>}
      </details>

      <details class="section" open={Boolean(fieldError('metadata') || state.metadata)}>
        <summary>Metadata</summary>
        <Field
          label="Metadata (JSON)"
          hint="Your own notes about the key, up to 8 KB."
          error={fieldError('metadata')}
        >
          {(props) => (
            <textarea
              {...props}
              name="metadata"
              rows={3}
              spellcheck={false}
              class="mono"
              value={state.metadata}
              onInput={(e) => set({ metadata: e.currentTarget.value })}
            />
          )}
        </Field>
      </details>
    </>
  );
}
