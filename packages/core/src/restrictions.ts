import { BlockList, isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { KeygateError } from './errors.js';
import type { KeygateRequest, KeyRestrictions } from './types.js';

interface CompiledRestrictions {
  ips: BlockList | null;
  referrers: RegExp[] | null;
  endpoints: Array<{ method: string; path: RegExp }> | null;
}

const compiled = new WeakMap<KeyRestrictions, CompiledRestrictions>();

/** Normalises `::ffff:1.2.3.4` (IPv4 seen through a dual-stack socket) to `1.2.3.4`. */
export function normaliseIp(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return mapped ? mapped[1]! : ip;
}

/** Throws on an entry that could never match, so bad restrictions are refused when a key is saved. */
export function validateRestrictions(restrictions: KeyRestrictions): void {
  compile(restrictions);
}

function compile(restrictions: KeyRestrictions): CompiledRestrictions {
  const cached = compiled.get(restrictions);
  if (cached) return cached;
  const result: CompiledRestrictions = { ips: null, referrers: null, endpoints: null };
  if (restrictions.ips && restrictions.ips.length > 0) {
    const list = new BlockList();
    for (const entry of restrictions.ips) {
      const [address = '', bits, ...extra] = entry.split('/');
      const family = isIP(address);
      if (family === 0 || extra.length > 0)
        throw new Error(`not an IP address or CIDR range: ${entry}`);
      const type = family === 4 ? 'ipv4' : 'ipv6';
      if (bits === undefined) {
        list.addAddress(address, type);
      } else {
        const prefix = Number(bits);
        if (!/^\d+$/.test(bits) || prefix > (family === 4 ? 32 : 128)) {
          throw new Error(`bad CIDR prefix length: ${entry}`);
        }
        list.addSubnet(address, prefix, type);
      }
    }
    result.ips = list;
  }
  if (restrictions.referrers && restrictions.referrers.length > 0) {
    result.referrers = restrictions.referrers.map((pattern) => {
      if (!/^(https?:\/\/|\*:\/\/)?[a-z0-9*.-]+(:\d+|:\*)?\/?$/i.test(pattern)) {
        throw new Error(`not an origin pattern: ${pattern}`);
      }
      const source = escapeRegExp(pattern.replace(/\/$/, '').toLowerCase()).replace(
        /\\\*/g,
        '[^/]*',
      );
      return new RegExp(`^${pattern.includes('://') ? '' : 'https?://'}${source}$`);
    });
  }
  if (restrictions.endpoints && restrictions.endpoints.length > 0) {
    result.endpoints = restrictions.endpoints.map((entry) => {
      const match = /^([A-Za-z]+|\*)\s+(\/\S*)$/.exec(entry.trim());
      if (!match) throw new Error(`not an endpoint pattern ("METHOD /path"): ${entry}`);
      const path = match[2]!
        .split('/')
        .map((segment) =>
          segment === '**' ? '.*' : segment === '*' ? '[^/]+' : escapeRegExp(segment),
        )
        .join('/')
        .replace(/\/\.\*$/, '(?:/.*)?');
      return { method: match[1]!.toUpperCase(), path: new RegExp(`^${path}/?$`) };
    });
  }
  compiled.set(restrictions, result);
  return result;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function originOf(req: KeygateRequest): string | null {
  const origin = req.headers.get('origin');
  if (origin && origin !== 'null') return origin.toLowerCase();
  const referer = req.headers.get('referer');
  if (!referer) return null;
  try {
    return new URL(referer).origin.toLowerCase();
  } catch {
    return null;
  }
}

/** The restriction a request violates, as a `FORBIDDEN` error, or `null`. */
export function checkRestrictions(
  restrictions: KeyRestrictions | null,
  req: KeygateRequest,
  path: string,
): KeygateError | null {
  if (!restrictions) return null;
  const rules = compile(restrictions);
  if (rules.ips) {
    const ip = req.ip ? normaliseIp(req.ip) : '';
    const family = isIP(ip);
    if (family === 0 || !rules.ips.check(ip, family === 4 ? 'ipv4' : 'ipv6')) {
      return new KeygateError('FORBIDDEN', {
        message: 'This API key is not allowed from this IP address',
        reason: 'restricted_ip',
      });
    }
  }
  if (rules.referrers) {
    const origin = originOf(req);
    if (!origin || !rules.referrers.some((pattern) => pattern.test(origin))) {
      return new KeygateError('FORBIDDEN', {
        message: 'This API key is not allowed from this origin',
        reason: 'restricted_referrer',
      });
    }
  }
  if (rules.endpoints) {
    const method = req.method.toUpperCase();
    const allowed = rules.endpoints.some(
      (rule) => (rule.method === '*' || rule.method === method) && rule.path.test(path),
    );
    if (!allowed) {
      return new KeygateError('FORBIDDEN', {
        message: 'This API key is not allowed to call this endpoint',
        reason: 'restricted_endpoint',
      });
    }
  }
  return null;
}

const KINDS = { ips: 'IPs', referrers: 'origins', endpoints: 'endpoints' } as const;

/**
 * Why a key with `restrictions` could be used where one with `bound` could not, naming the list
 * and the entry, or `null` when every request the first allows the second allows too. A list
 * that is absent or empty in `bound` allows anything.
 */
export function restrictionsBeyond(
  restrictions: KeyRestrictions | null,
  bound: KeyRestrictions | null,
): string | null {
  for (const kind of ['ips', 'referrers', 'endpoints'] as const) {
    const limits = bound?.[kind] ?? [];
    if (limits.length === 0) continue;
    const entries = restrictions?.[kind] ?? [];
    if (entries.length === 0) {
      return `restrictions.${kind}: the caller is limited to ${KINDS[kind]} ${limits.join(', ')}, and so must the key be`;
    }
    const within =
      kind === 'ips' ? ipWithin : kind === 'referrers' ? referrerWithin : endpointWithin;
    const outside = entries.find((entry) => !limits.some((limit) => within(entry, limit)));
    if (outside !== undefined) {
      return `restrictions.${kind}: ${outside} is outside the caller's allowed ${KINDS[kind]} (${limits.join(', ')})`;
    }
  }
  return null;
}

function cidr(entry: string): [ipaddr.IPv4 | ipaddr.IPv6, number] {
  if (entry.includes('/')) return ipaddr.parseCIDR(entry);
  const address = ipaddr.parse(entry);
  return [address, address.kind() === 'ipv4' ? 32 : 128];
}

/** Whether every address of the range `entry` is in the range `limit`. */
function ipWithin(entry: string, limit: string): boolean {
  try {
    const [address, bits] = cidr(entry);
    const [range, rangeBits] = cidr(limit);
    return address.kind() === range.kind() && bits >= rangeBits && address.match(range, rangeBits);
  } catch {
    return false;
  }
}

/**
 * Whether every origin `entry` matches, `limit` matches too. `limit`'s pattern is tried on
 * `entry`'s text, in which a `*` stands for itself: only a `*` of `limit` can match it, and that
 * one matches whatever the `*` of `entry` may stand for.
 */
function referrerWithin(entry: string, limit: string): boolean {
  let pattern: RegExp | undefined;
  try {
    pattern = compile({ referrers: [limit] }).referrers?.[0];
  } catch {
    return false;
  }
  const text = entry.replace(/\/$/, '').toLowerCase();
  const origins = text.includes('://') ? [text] : [`http://${text}`, `https://${text}`];
  return pattern !== undefined && origins.every((origin) => pattern.test(origin));
}

/** A segment of an endpoint path pattern: text, `*` (one segment), `**` inside or at the end. */
type Segment = { text: string } | 'one' | 'inner' | 'rest';

function endpointPattern(entry: string): { method: string; segments: Segment[] } | null {
  const match = /^([A-Za-z]+|\*)\s+(\/\S*)$/.exec(entry.trim());
  if (!match) return null;
  const parts = match[2]!.split('/');
  const segments = parts.map((part, index): Segment => {
    if (part === '**') return index === parts.length - 1 ? 'rest' : 'inner';
    return part === '*' ? 'one' : { text: part };
  });
  return { method: match[1]!.toUpperCase(), segments };
}

/** Whether every request `entry` allows, `limit` allows too (same matching as `checkRestrictions`). */
function endpointWithin(entry: string, limit: string): boolean {
  const inner = endpointPattern(entry);
  const outer = endpointPattern(limit);
  if (!inner || !outer) return false;
  if (outer.method !== '*' && outer.method !== inner.method) return false;
  return pathWithin(inner.segments, outer.segments, 0, 0);
}

// Written by hand: no library compares two glob patterns; this follows the matcher in `compile`.
function pathWithin(entry: Segment[], limit: Segment[], i: number, j: number): boolean {
  if (j === limit.length) return i === entry.length;
  const outer = limit[j]!;
  // A trailing `**` allows any suffix, or none.
  if (outer === 'rest') return true;
  // An inner `**` matches any text between two slashes: one or more segments of `entry`,
  // but not `entry`'s own trailing `**`, which may also stand for nothing.
  if (outer === 'inner') {
    for (let k = i + 1; k <= entry.length; k++) {
      if (entry[k - 1] === 'rest') return false;
      if (pathWithin(entry, limit, k, j + 1)) return true;
    }
    return false;
  }
  const inner = entry[i];
  if (inner === undefined || inner === 'rest' || inner === 'inner') return false;
  const matches =
    outer === 'one'
      ? inner === 'one' || inner.text !== ''
      : inner !== 'one' && inner.text === outer.text;
  return matches && pathWithin(entry, limit, i + 1, j + 1);
}
