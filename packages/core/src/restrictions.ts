import { BlockList, isIP } from 'node:net';
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
