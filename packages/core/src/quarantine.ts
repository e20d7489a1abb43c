import { BlockList, isIP } from 'node:net';
import { KeygateError } from './errors.js';
import { normaliseIp } from './restrictions.js';
import type { KeyLeak } from './types.js';

/**
 * The addresses a quarantined key still works from (see `LeakOptions`), made ready once per key
 * when it is loaded: exact IPs, or networks (`2001:db8::/64`) where usage keeps those. `null`
 * when the key is not quarantined.
 */
export function compileQuarantine(leak: KeyLeak | null): BlockList | null {
  if (leak?.containment !== 'quarantine' || !leak.quarantine) return null;
  const list = new BlockList();
  for (const entry of leak.quarantine.ips) {
    const [address = '', bits] = normaliseIp(entry).split('/');
    const family = isIP(address);
    if (family === 0) continue;
    const type = family === 4 ? 'ipv4' : 'ipv6';
    const prefix = Number(bits);
    if (bits !== undefined && Number.isInteger(prefix) && prefix >= 0) {
      list.addSubnet(address, prefix, type);
    } else list.addAddress(address, type);
  }
  return list;
}

/** `FORBIDDEN` for a quarantined key used from an address it was not used from before its leak. */
export function quarantineViolation(
  quarantine: BlockList | null,
  ip: string | undefined,
): KeygateError | null {
  if (!quarantine) return null;
  const address = ip ? normaliseIp(ip) : '';
  const family = isIP(address);
  if (family !== 0 && quarantine.check(address, family === 4 ? 'ipv4' : 'ipv6')) return null;
  return new KeygateError('FORBIDDEN', {
    message:
      'This API key was reported leaked and is quarantined: it works only from the addresses it was used from before',
    reason: 'quarantined',
  });
}
