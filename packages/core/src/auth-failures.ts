import ipaddr from 'ipaddr.js';

/**
 * Who the failed-authentication guard counts a failure against: the client's IPv4 address, or
 * its IPv6 /64 (one host is commonly given a whole /64, as express-rate-limit assumes too).
 * `null` without an IP: such requests are not counted, rather than pooled under one name where
 * one client's failures would lock out every other.
 */
export function failureSubject(ip: string | null): string | null {
  if (!ip) return null;
  let address: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    // `process` also turns an IPv4-mapped IPv6 address into its IPv4 address.
    address = ipaddr.process(ip);
  } catch {
    // Not an address (an app's own `getIp` may return anything): counted as given.
    return ip;
  }
  if (address.kind() === 'ipv4') return address.toString();
  return `${address.toNormalizedString().split(':').slice(0, 4).join(':')}::/64`;
}
