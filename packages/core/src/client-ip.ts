import proxyaddr from 'proxy-addr';
import { KeygateConfigError } from './errors.js';

/**
 * The proxies in front of the app whose `X-Forwarded-For` entries are believed, as Express's
 * `trust proxy`: a number of hops, or their addresses and CIDR ranges. `0`: none.
 */
export type TrustProxy = number | readonly string[];

/**
 * The client IP from the connection's address and `X-Forwarded-For`, trusting `trustProxy` as
 * Express does (with its library, `proxy-addr`): the rightmost address that is not a trusted
 * proxy, so a client cannot choose it by sending the header itself. For frameworks without a
 * proxy setting of their own (Hono); the others' (`req.ip`, `ctx.ip`) already apply theirs.
 * `null` when no proxy is trusted: the client is the connection's address.
 */
export function proxyTrust(
  trustProxy: TrustProxy = 0,
): ((address: string | undefined, forwardedFor: string | undefined) => string | undefined) | null {
  let trust: (address: string, hop: number) => boolean;
  if (typeof trustProxy === 'number') {
    if (!Number.isInteger(trustProxy) || trustProxy < 0) {
      throw new KeygateConfigError('INVALID_OPTION', 'trustProxy must be a whole number of hops');
    }
    trust = (_address, hop) => hop < trustProxy;
  } else {
    try {
      trust = proxyaddr.compile([...trustProxy]);
    } catch (error) {
      throw new KeygateConfigError('INVALID_OPTION', `trustProxy: ${(error as Error).message}`);
    }
  }
  if (trustProxy === 0) return null;
  return (address, forwardedFor) => {
    if (address === undefined || forwardedFor === undefined) return address;
    const request = {
      headers: { 'x-forwarded-for': forwardedFor },
      socket: { remoteAddress: address },
    };
    return proxyaddr(request as unknown as Parameters<typeof proxyaddr>[0], trust);
  };
}

/**
 * A framework's `getIp` from its connection's address and `X-Forwarded-For`, believing the
 * latter from `trustProxy` only (see {@link proxyTrust}).
 */
export function clientIpOf<Ctx>(
  trustProxy: TrustProxy | undefined,
  address: (ctx: Ctx) => string | undefined,
  forwardedFor: (ctx: Ctx) => string | undefined,
): (ctx: Ctx) => string | undefined {
  const trusted = proxyTrust(trustProxy);
  return trusted ? (ctx) => trusted(address(ctx), forwardedFor(ctx)) : address;
}
