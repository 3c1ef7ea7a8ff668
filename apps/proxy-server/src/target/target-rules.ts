import { BlockList, isIP } from 'node:net';
import { ValidateBy } from 'class-validator';

/*
 * The target rules as configured (TARGET_DENY_CIDRS, TARGET_ALLOW_CIDRS,
 * TARGET_ALLOW_HOSTS): parsing and validation at start-up, and the matching
 * the guard does with them. Pure: no I/O.
 */

/** Cloud metadata endpoints: AWS, GCP, Azure, OpenStack (IPv4 link-local) and AWS's IPv6 one. */
export const DEFAULT_TARGET_DENY_CIDRS = '169.254.0.0/16,fd00:ec2::254/128';

/** One network of a CIDR list, as configured (for messages) and as Node matches it. */
export interface Cidr {
  /** The entry as written, e.g. `169.254.0.0/16`. */
  text: string;
  /** Matches the network, its IPv4-mapped IPv6 form included (Node's BlockList does both). */
  list: BlockList;
}

/** The entries of a comma-separated list, trimmed, empty ones dropped. */
function entries(raw: string): string[] {
  return raw
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
}

/** One CIDR entry (`10.0.0.0/8`, `fd00::/8`, or a bare address), or undefined when it is not one. */
function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  const address = (slash === -1 ? text : text.slice(0, slash)).replace(
    /^\[(.*)\]$/,
    '$1',
  );
  const family = isIP(address);
  if (family === 0) return undefined;
  const bits = family === 4 ? 32 : 128;
  const prefixText = slash === -1 ? String(bits) : text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > bits) return undefined;
  const list = new BlockList();
  list.addSubnet(address, prefix, family === 4 ? 'ipv4' : 'ipv6');
  return { text, list };
}

/** The networks of a comma-separated CIDR list; throws on an entry that is not one (validated before). */
export function parseCidrList(raw: string): Cidr[] {
  return entries(raw).map((text) => {
    const cidr = parseCidr(text);
    if (!cidr) throw new Error(`not a CIDR: ${text}`);
    return cidr;
  });
}

/**
 * An environment variable holding a comma-separated list of networks in
 * CIDR notation, IPv4 or IPv6 (`10.0.0.0/8, fd00::/8`); a bare address is
 * a network of one. Strict: a typo stops the app rather than silently
 * allowing (or denying) other addresses than meant.
 */
export function CidrList(): PropertyDecorator {
  return ValidateBy({
    name: 'cidrList',
    validator: {
      validate: (value: unknown) =>
        value === undefined ||
        (typeof value === 'string' &&
          entries(value).length > 0 &&
          entries(value).every((entry) => parseCidr(entry) !== undefined)),
      defaultMessage: () =>
        'must be a comma-separated list of networks in CIDR notation, such as 10.0.0.0/8,fd00::/8',
    },
  });
}

/** The address a host is written as, when it is an IP literal (brackets removed), else undefined. */
export function ipLiteral(host: string): string | undefined {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  return isIP(bare) === 0 ? undefined : bare;
}

/** A host name as compared: lower case, without a trailing dot or IPv6 brackets. */
export function normalHost(host: string): string {
  return host
    .replace(/^\[(.*)\]$/, '$1')
    .toLowerCase()
    .replace(/\.$/, '');
}

const HOST_NAME =
  /^(\*\.)?([a-z0-9_]([a-z0-9_-]*[a-z0-9_])?\.)*[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$/;

/** Whether one TARGET_ALLOW_HOSTS entry is a host name, a `*.` wildcard or an IP literal. */
function isHostPattern(entry: string): boolean {
  const host = normalHost(entry);
  return ipLiteral(host) !== undefined || HOST_NAME.test(host);
}

/** The entries of TARGET_ALLOW_HOSTS, normalised. */
export function parseHostPatterns(raw: string): string[] {
  return entries(raw).map(normalHost);
}

/**
 * Whether `host` is allowed by one of `patterns`: the same name, or a name
 * under a `*.example.com` wildcard (at any depth; `example.com` itself
 * only when listed too).
 */
export function matchesHostPattern(host: string, patterns: string[]): boolean {
  const name = normalHost(host);
  return patterns.some((pattern) =>
    pattern.startsWith('*.')
      ? name.endsWith(pattern.slice(1)) && name.length > pattern.length - 1
      : name === pattern,
  );
}

/**
 * An environment variable holding a comma-separated list of host names,
 * `*.example.com` wildcards and IP literals (TARGET_ALLOW_HOSTS).
 */
export function HostPatternList(): PropertyDecorator {
  return ValidateBy({
    name: 'hostPatternList',
    validator: {
      validate: (value: unknown) =>
        value === undefined ||
        (typeof value === 'string' &&
          entries(value).length > 0 &&
          entries(value).every(isHostPattern)),
      defaultMessage: () =>
        'must be a comma-separated list of host names, *.domain wildcards or IP addresses, such as api.example.com,*.internal.example.com',
    },
  });
}
