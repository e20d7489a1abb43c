import { createHash } from 'node:crypto';
import { z } from 'zod';
import { failure, KeygateError } from './errors.js';
import { pathOf } from './extract.js';
import { describeIssues, findUnsafeText } from './key-input.js';
import type { Keygate } from './keygate.js';
import type { Actor } from './keys.js';
import type { LeakOutcome, LeakReport } from './leaks.js';
import type { ManagementRequest, ManagementResponse } from './management.js';
import { requestContext, requestIdOf } from './request-context.js';

/** Largest leak report accepted, in bytes: GitHub may send many matches in one. */
export const MAX_LEAK_REPORT_BODY = 1024 * 1024;
/** Most matches in one report. */
export const MAX_LEAK_REPORT_ENTRIES = 1000;

/** GitHub's secret-scanning partner format: an array of matches (fields besides these are ignored). */
const leakReportInput = z
  .array(
    z.object({
      token: z.string().min(1).max(4096),
      type: z.string().max(200).optional(),
      url: z.string().max(2048).nullable().optional(),
      source: z.string().max(100).optional(),
    }),
  )
  .min(1)
  .max(MAX_LEAK_REPORT_ENTRIES);

type LeakReportInput = z.infer<typeof leakReportInput>;

/** Whether a request to the leak endpoint claims to be signed by GitHub (then no key authenticates it). */
export function isSignedLeakReport(req: ManagementRequest): boolean {
  const { headers } = req.request;
  return (
    headers.get('github-public-key-signature') !== null ||
    headers.get('github-public-key-identifier') !== null
  );
}

/**
 * A report GitHub signed: the signature is checked over the raw body against the configured keys
 * (401 when it does not verify: nothing is read from the body before), then each match is acted
 * on, and the answer is the partner program's feedback: one `{token_hash, token_type, label}` per
 * match, `true_positive` when it is a key of this deployment. The token is answered hashed
 * (SHA-256), never raw.
 */
export async function answerSignedLeakReport(
  keygate: Keygate,
  req: ManagementRequest,
): Promise<ManagementResponse> {
  const { headers } = req.request;
  const body = await rawBody(req);
  if (body instanceof KeygateError) return refused(body);
  if (
    body === null ||
    !keygate.leaks.verifyGitHub(
      body,
      headers.get('github-public-key-identifier'),
      headers.get('github-public-key-signature'),
    )
  ) {
    const context = requestContext(req.request, pathOf(req.request.url), keygate.leaks.format);
    keygate.audit.recordFailure('auth.failed', 'invalid_signature', null, context);
    return refused(
      new KeygateError('INVALID_SIGNATURE', {
        message:
          body === null
            ? 'The report signature covers the raw body, which a body parser has read: mount the router before it'
            : undefined,
      }),
    );
  }
  const entries = parseReport(Buffer.from(body).toString('utf8'));
  if (entries instanceof KeygateError) return refused(entries);
  const context = requestContext(req.request, pathOf(req.request.url), keygate.leaks.format);
  const actor: Actor = { id: 'github', ...context, requestId: requestIdOf(context) };
  const reports = entries.map(
    (entry): LeakReport => ({
      token: entry.token,
      url: entry.url || null,
      source: `github:${(entry.source ?? 'unknown').toLowerCase()}`,
    }),
  );
  const outcomes = await keygate.leaks.report(reports, actor);
  return {
    ok: true,
    status: 200,
    body: entries.map((entry, i) => ({
      token_hash: createHash('sha256').update(entry.token).digest('hex'),
      token_type: entry.type ?? '',
      label: outcomes[i]!.some((o) => o.found) ? 'true_positive' : 'false_positive',
    })),
    headers: {},
  };
}

/** A report from the operator's own tooling (an admin key or session): the same format, keygate's answer. */
export async function answerAdminLeakReport(
  keygate: Keygate,
  body: unknown,
  actor: Actor,
): Promise<Array<{ token_hash: string; keys: LeakOutcome[] }>> {
  const entries = leakReportInput.safeParse(body);
  if (!entries.success)
    throw new KeygateError('INVALID_REQUEST', { message: describeIssues(entries.error) });
  const unsafe = findUnsafeText(entries.data);
  if (unsafe) throw new KeygateError('INVALID_REQUEST', { message: unsafe });
  const reports = entries.data.map(
    (entry): LeakReport => ({
      token: entry.token,
      url: entry.url || null,
      source: entry.source ? `admin:${entry.source.toLowerCase()}` : 'admin',
    }),
  );
  const outcomes = await keygate.leaks.report(reports, actor);
  return entries.data.map((entry, i) => ({
    token_hash: createHash('sha256').update(entry.token).digest('hex'),
    keys: outcomes[i]!.filter((o) => o.found),
  }));
}

/** The body's bytes as sent, up to the limit; `null` when a body parser left an object (the raw bytes are gone). */
async function rawBody(req: ManagementRequest): Promise<Uint8Array | null | KeygateError> {
  const source = await req.body();
  if (source === undefined || source === null) return new Uint8Array(0);
  if (typeof source === 'string') {
    const bytes = Buffer.from(source, 'utf8');
    return bytes.length > MAX_LEAK_REPORT_BODY ? tooLarge() : bytes;
  }
  if (source instanceof Uint8Array) {
    return source.length > MAX_LEAK_REPORT_BODY ? tooLarge() : source;
  }
  if (typeof source === 'object' && Symbol.asyncIterator in source) {
    const declared = req.request.headers.get('content-length');
    if (declared !== null && Number(declared) > MAX_LEAK_REPORT_BODY) return tooLarge();
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of source as AsyncIterable<Uint8Array | string>) {
      const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk);
      size += buffer.length;
      if (size > MAX_LEAK_REPORT_BODY) return tooLarge();
      chunks.push(buffer);
    }
    return Buffer.concat(chunks);
  }
  return null;
}

function parseReport(text: string): LeakReportInput | KeygateError {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return new KeygateError('INVALID_REQUEST', { message: 'the report is not valid JSON' });
  }
  const entries = leakReportInput.safeParse(json);
  if (!entries.success) {
    return new KeygateError('INVALID_REQUEST', { message: describeIssues(entries.error) });
  }
  const unsafe = findUnsafeText(entries.data);
  return unsafe ? new KeygateError('INVALID_REQUEST', { message: unsafe }) : entries.data;
}

function tooLarge(): KeygateError {
  return new KeygateError('INVALID_REQUEST', {
    message: 'the report is too large',
    reason: 'body_too_large',
  });
}

function refused(error: KeygateError): ManagementResponse {
  const answer = failure(error);
  if (error.reason === 'body_too_large') answer.headers.Connection = 'close';
  return answer;
}
