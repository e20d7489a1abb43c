import type { ComponentChildren } from 'preact';
import { useId, useLayoutEffect, useRef } from 'preact/hooks';
import { STATUS_LABELS, type Status } from './format.ts';

export function Badge({ tone, children }: { tone: string; children: ComponentChildren }) {
  return <span class={`badge badge-${tone}`}>{children}</span>;
}

export function StatusBadge({ status }: { status: Status }) {
  return (
    <span class={`status status-${status}`}>
      <span class="status-dot" aria-hidden="true" />
      {STATUS_LABELS[status]}
    </span>
  );
}

export function KeyBadges({ type, environment }: { type: string; environment: string }) {
  return (
    <span class="badges">
      <Badge tone={type}>{type}</Badge>
      <Badge tone={environment}>{environment}</Badge>
    </span>
  );
}

export function Chips({ items, empty, max = 3 }: { items: string[]; empty: string; max?: number }) {
  if (items.length === 0) return <span class="muted">{empty}</span>;
  const shown = items.slice(0, max);
  return (
    <span class="chips" title={items.join(', ')}>
      {shown.map((item) => (
        <code class="chip" key={item}>
          {item}
        </code>
      ))}
      {items.length > max && <span class="chip chip-more">+{items.length - max}</span>}
    </span>
  );
}

export function Alert({
  tone = 'error',
  children,
}: {
  tone?: string;
  children: ComponentChildren;
}) {
  return (
    <div class={`alert alert-${tone}`} role={tone === 'error' ? 'alert' : 'status'} tabIndex={-1}>
      {children}
    </div>
  );
}

export function Spinner({ label }: { label: string }) {
  return (
    <div class="loading" role="status">
      <span class="spinner" aria-hidden="true" />
      {label}
    </div>
  );
}

/**
 * A modal dialog on the native `<dialog>`: the browser keeps focus inside and the page behind inert;
 * focus returns to whatever opened it.
 */
export function Dialog({
  title,
  description,
  onClose,
  canClose = true,
  wide = false,
  children,
}: {
  title: string;
  description?: ComponentChildren;
  onClose: () => void;
  canClose?: boolean;
  wide?: boolean;
  children: ComponentChildren;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  const descriptionId = useId();
  // A layout effect: the dialog opens before the first paint, and focus is back before it is gone.
  useLayoutEffect(() => {
    const opener = document.activeElement as HTMLElement | null;
    const dialog = ref.current!;
    dialog.showModal();
    dialog.querySelector<HTMLElement>('[data-autofocus]')?.focus();
    return () => {
      dialog.close();
      if (opener?.isConnected) opener.focus();
    };
  }, []);
  return (
    <dialog
      ref={ref}
      class={wide ? 'dialog dialog-wide' : 'dialog'}
      aria-labelledby={titleId}
      aria-describedby={description ? descriptionId : undefined}
      onCancel={(event) => {
        event.preventDefault();
        if (canClose) onClose();
      }}
    >
      <div class="dialog-header">
        <h2 id={titleId}>{title}</h2>
        {canClose && (
          <button type="button" class="icon-button" aria-label="Close" onClick={onClose}>
            <svg viewBox="0 0 20 20" width="20" height="20" aria-hidden="true">
              <path d="M5 5l10 10M15 5L5 15" stroke="currentColor" stroke-width="1.8" />
            </svg>
          </button>
        )}
      </div>
      {description && (
        <p class="dialog-description" id={descriptionId}>
          {description}
        </p>
      )}
      {children}
    </dialog>
  );
}

/** A labelled form control with its hint and the API's message for it. */
export function Field({
  label,
  hint,
  error,
  children,
  id,
}: {
  label: string;
  hint?: ComponentChildren;
  error?: string | undefined;
  children: (props: {
    id: string;
    'aria-describedby'?: string;
    'aria-invalid'?: boolean;
  }) => ComponentChildren;
  id?: string;
}) {
  const generated = useId();
  const controlId = id ?? generated;
  const hintId = `${controlId}-hint`;
  const errorId = `${controlId}-error`;
  const describedBy = [hint ? hintId : '', error ? errorId : ''].filter(Boolean).join(' ');
  return (
    <div class={error ? 'field field-invalid' : 'field'}>
      <label for={controlId}>{label}</label>
      {children({
        id: controlId,
        'aria-describedby': describedBy || undefined,
        'aria-invalid': error ? true : undefined,
      })}
      {hint && (
        <p class="hint" id={hintId}>
          {hint}
        </p>
      )}
      {error && (
        <p class="field-error" id={errorId}>
          {error}
        </p>
      )}
    </div>
  );
}
