import { z } from 'zod';
import { validateRestrictions } from './restrictions.js';

const scope = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[a-z0-9_.*-]+(:[a-z0-9_.*-]+)*$/i, 'a scope is like read:data');
const resource = z
  .string()
  .min(3)
  .max(200)
  .regex(/^[a-z][a-z0-9_-]*:[^\s:][^\s]*$/i, 'a resource is like website:w_123 or link:*');
const positive = z.number().positive().finite();
const positiveInt = z.number().int().positive();

const restrictions = z
  .object({
    ips: z.array(z.string().min(1).max(64)).max(100).optional(),
    referrers: z.array(z.string().min(1).max(255)).max(100).optional(),
    endpoints: z.array(z.string().min(1).max(255)).max(100).optional(),
  })
  .strict()
  .superRefine((value, ctx) => {
    try {
      validateRestrictions(value);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: (error as Error).message });
    }
  });

const rateLimit = z
  .object({
    perSecond: positive.optional(),
    burst: positiveInt.optional(),
    daily: positiveInt.optional(),
  })
  .strict();

const expiresAt = z.coerce
  .date({ error: 'expiresAt must be an ISO-8601 date' })
  .refine((d) => d.getTime() > Date.now(), 'expiresAt must be in the future')
  // Postgres (and ISO-8601 without an expanded year) cannot hold a later year.
  .refine((d) => d.getUTCFullYear() <= 9999, 'expiresAt must be before the year 10000');

const metadata = z
  .record(z.string(), z.unknown())
  .refine((m) => JSON.stringify(m).length <= 8_192, 'metadata must be at most 8 KB as JSON');

export const createKeyInput = z
  .object({
    name: z.string().trim().min(1).max(200),
    ownerId: z.string().min(1).max(200).optional(),
    type: z.enum(['secret', 'public']).default('secret'),
    environment: z.enum(['live', 'test']).default('live'),
    scopes: z.array(scope).max(100),
    resources: z.array(resource).max(1_000).nullable().default(null),
    restrictions: restrictions.nullable().default(null),
    rateLimit: rateLimit.nullable().default(null),
    metadata: metadata.nullable().default(null),
    expiresAt: expiresAt.nullable().default(null),
  })
  .strict();

export const updateKeyInput = z
  .object({
    name: z.string().trim().min(1).max(200).optional(),
    scopes: z.array(scope).max(100).optional(),
    resources: z.array(resource).max(1_000).nullable().optional(),
    restrictions: restrictions.nullable().optional(),
    rateLimit: rateLimit.nullable().optional(),
    metadata: metadata.nullable().optional(),
    expiresAt: expiresAt.nullable().optional(),
  })
  .strict();

export const rotateKeyInput = z
  .object({
    gracePeriodSeconds: z
      .number()
      .int()
      .min(0)
      .max(30 * 86_400)
      .default(0),
  })
  .strict();

export type CreateKeyInput = z.input<typeof createKeyInput>;
export type UpdateKeyInput = z.input<typeof updateKeyInput>;
export type RotateKeyInput = z.input<typeof rotateKeyInput>;

/** Zod's issues as one readable sentence: `scopes.0: a scope is like read:data; name: Required`. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) =>
      issue.path.length > 0 ? `${issue.path.join('.')}: ${issue.message}` : issue.message,
    )
    .join('; ');
}

// C0 and C1 control characters (NUL included) and DEL.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const MAX_DEPTH = 32;

function textProblem(text: string): string | null {
  if (CONTROL.test(text)) return 'a control character';
  if (LONE_SURROGATE.test(text)) return 'an unpaired surrogate';
  return null;
}

/**
 * The first string (or object key) anywhere in a management body that no key field may hold, as
 * `path: what is wrong`: control characters (NUL among them) and unpaired UTF-16 surrogates,
 * which a database cannot store or display. `null` when there is none.
 */
export function findUnsafeText(value: unknown, path: readonly string[] = []): string | null {
  const where = path.length > 0 ? path.join('.') : 'body';
  if (typeof value === 'string') {
    const problem = textProblem(value);
    return problem ? `${where}: must not contain ${problem}` : null;
  }
  if (typeof value !== 'object' || value === null) return null;
  if (path.length >= MAX_DEPTH) return `${where}: must not be nested more than ${MAX_DEPTH} levels`;
  for (const [key, item] of Object.entries(value)) {
    const problem = textProblem(key);
    if (problem) return `${where}: a field name must not contain ${problem}`;
    const found = findUnsafeText(item, [...path, key]);
    if (found) return found;
  }
  return null;
}
