import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP, type LookupFunction, type Socket } from 'node:net';
import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { buildConnector } from 'undici';
import { ErrorCode, ProtocolError } from '@app/protocol';
import { serverConfig } from '../config/server.config.js';
import {
  type Cidr,
  ipLiteral,
  matchesHostPattern,
  normalHost,
} from './target-rules.js';

/** A target the server refuses to connect to: 403 `target_forbidden`. */
export class TargetForbiddenError extends ProtocolError {
  constructor(reason: string) {
    super(
      403,
      ErrorCode.TargetForbidden,
      `${reason}. Choose another target, or ask the server's operator to change the target rules.`,
    );
    this.name = 'TargetForbiddenError';
  }
}

/** The target rules as the guard applies them. */
export interface TargetRules {
  /** TARGET_DENY_CIDRS: never connected to, whatever the allow-lists say. */
  denyCidrs: Cidr[];
  /** TARGET_ALLOW_CIDRS: when set, only addresses in these networks are connected to. */
  allowCidrs: Cidr[] | undefined;
  /** TARGET_ALLOW_HOSTS: when set, only these names (and `*.` wildcards) are connected to. */
  allowHosts: string[] | undefined;
}

function texts(cidrs: Cidr[]): string {
  return cidrs.map((cidr) => cidr.text).join(', ');
}

/**
 * The SSRF guard: decides which targets proxy-server connects to, for plain
 * requests (undici) and CONNECT tunnels (net.connect) alike.
 *
 * The decision is made on the address actually connected to, not on the
 * name the client sent, so that DNS rebinding (a name that resolves to a
 * public address when checked and to 169.254.169.254 when connected) gets
 * nowhere. Three hooks, one decision ({@link refusal}):
 *
 * ```
 * target_host ──▶ checkHost    names: TARGET_ALLOW_HOSTS; IP literals (also the
 *                              numeric forms URL parsing and getaddrinfo accept,
 *                              `2852039166`): their address ─▶ 403 at creation
 * name ──DNS──▶ lookup         the resolved addresses are filtered before
 *                              connecting: only allowed ones are tried; none
 *                              left ─▶ 403. No packet goes to a denied address.
 * socket ──▶ checkConnected    the socket's remoteAddress once connected: the
 *                              backstop for any path that bypassed the two
 *                              above; the socket is destroyed before a byte
 *                              of the request is written.
 * ```
 *
 * The lookup is the primary check rather than the backstop because it
 * refuses before connecting and, for a name with several addresses, still
 * connects to the allowed ones instead of failing on the first denied one.
 * Node never calls the lookup for an IP literal, hence the literal check and
 * the backstop.
 */
@Injectable()
export class TargetGuard {
  private readonly rules: TargetRules;

  constructor(
    @Inject(serverConfig.KEY)
    config: Pick<ConfigType<typeof serverConfig>, 'targetRules'>,
  ) {
    this.rules = config.targetRules;
  }

  /**
   * Checks what can be checked before any DNS lookup: the name against
   * TARGET_ALLOW_HOSTS, and an IP literal's address. Throws
   * {@link TargetForbiddenError}.
   */
  checkHost(host: string): void {
    const name = normalHost(host);
    const literal = ipLiteral(name) ?? numericAddress(name);
    const { allowHosts } = this.rules;
    if (
      allowHosts &&
      !matchesHostPattern(name, allowHosts) &&
      !(literal !== undefined && matchesHostPattern(literal, allowHosts))
    ) {
      throw new TargetForbiddenError(
        `${name} is not in TARGET_ALLOW_HOSTS (${allowHosts.join(', ')}): this server connects only to those hosts`,
      );
    }
    if (literal !== undefined) {
      const refused = this.refusal(literal);
      if (refused) throw new TargetForbiddenError(refused);
    }
  }

  /**
   * Why the server must not connect to `address`, or undefined when it may.
   * `name` is the host name that resolved to it, for the message.
   */
  refusal(address: string, name?: string): string | undefined {
    const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    const via = name && name !== address ? ` (${name} resolves to it)` : '';
    const denied = this.rules.denyCidrs.find((cidr) =>
      cidr.list.check(address, family),
    );
    if (denied) {
      return `${address} is in TARGET_DENY_CIDRS (${denied.text})${via}: this server does not connect to that network (cloud metadata and other internal endpoints)`;
    }
    const { allowCidrs } = this.rules;
    if (
      allowCidrs &&
      !allowCidrs.some((cidr) => cidr.list.check(address, family))
    ) {
      return `${address} is not in TARGET_ALLOW_CIDRS (${texts(allowCidrs)})${via}: this server connects only to those networks`;
    }
    return undefined;
  }

  /**
   * A DNS lookup for `net.connect` and undici that resolves every address
   * of the name and hands on only the allowed ones; when none is left it
   * fails with {@link TargetForbiddenError}, naming the first refused
   * address and why.
   */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) {
        callback(error, '', 0);
        return;
      }
      const resolved = addresses as LookupAddress[];
      const allowed = resolved.filter(
        ({ address }) => this.refusal(address) === undefined,
      );
      if (allowed.length === 0) {
        const first = resolved[0]?.address ?? hostname;
        const reason =
          this.refusal(first, hostname) ?? `${hostname} has no address`;
        callback(new TargetForbiddenError(reason), '', 0);
        return;
      }
      if (options.all) callback(null, allowed);
      else callback(null, allowed[0].address, allowed[0].family);
    });
  };

  /**
   * Throws {@link TargetForbiddenError} (after destroying the socket) when
   * a connected socket's peer is refused: the backstop.
   */
  checkConnected(socket: Socket, name?: string): void {
    const address = socket.remoteAddress;
    if (address === undefined) return; // already closed: nothing can be sent
    const refused = this.refusal(address, name);
    if (refused) {
      socket.destroy();
      throw new TargetForbiddenError(refused);
    }
  }

  /**
   * undici's connector with the guard's lookup and backstop: a refused
   * connection is destroyed before undici writes the request on it, and
   * the request fails with the {@link TargetForbiddenError}.
   */
  connector(options: buildConnector.BuildOptions): buildConnector.connector {
    const connect = buildConnector({ ...options, lookup: this.lookup });
    return (target, callback) =>
      connect(target, (...args) => {
        const [error, socket] = args;
        if (error !== null) {
          callback(error, null);
          return;
        }
        try {
          this.checkConnected(socket, target.hostname);
        } catch (refused) {
          callback(refused as TargetForbiddenError, null);
          return;
        }
        callback(null, socket);
      });
  }
}

/**
 * The address a host name that is a number stands for, as URL parsing
 * (undici) and getaddrinfo (net.connect) read it: `2852039166` and
 * `0xa9.0xfe.0xa9.0xfe` are 169.254.169.254. Undefined for real names.
 */
function numericAddress(name: string): string | undefined {
  try {
    return ipLiteral(new URL(`http://${name}/`).hostname);
  } catch {
    return undefined;
  }
}
