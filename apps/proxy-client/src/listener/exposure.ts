import { BlockList, isIPv4, isIPv6 } from 'node:net';

const loopback = new BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');

/**
 * True for a listen host only this machine can reach: `localhost`, 127.0.0.0/8,
 * `::1` (also IPv4-mapped). Any other name or address (`0.0.0.0`, `::`, a
 * LAN address, a host name) may be reachable from elsewhere.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIPv4(h)) return loopback.check(h, 'ipv4');
  if (isIPv6(h)) return loopback.check(h, 'ipv6');
  return false;
}

/**
 * The start-up warning for a proxy others can use: bound beyond loopback
 * with no CLIENT_PROXY_AUTH, whoever reaches the port sends requests signed
 * with this machine's AWS credentials. Undefined when there is nothing to say.
 */
export function exposureWarning(
  host: string,
  port: number,
  authenticated: boolean,
): string | undefined {
  if (authenticated || isLoopbackHost(host)) return undefined;
  return `CLIENT_LISTEN_HOST=${host} is not a loopback address and CLIENT_PROXY_AUTH is not set: anyone who can reach port ${port} can use this proxy, and its AWS credentials with it. Set CLIENT_PROXY_AUTH=user:password, or listen on 127.0.0.1.`;
}
