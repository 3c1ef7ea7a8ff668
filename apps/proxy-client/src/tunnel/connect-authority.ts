import { ErrorCode, ProtocolError } from '@app/protocol';

/** Where a CONNECT request wants a tunnel to. */
export interface ConnectTarget {
  /** Host name or IP, IPv6 in brackets: `target_host` of the protocol. */
  targetHost: string;
  port: number;
  /** `host:port` as the application wrote it (checked), for logs and messages. */
  display: string;
}

const AUTHORITY = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/;

/**
 * Reads the authority-form target of `CONNECT host:port` (RFC 9110 9.3.6):
 * a host and a port, nothing else. Anything else is a 400, answered before
 * any gateway call.
 */
export function parseConnectAuthority(authority: string): ConnectTarget {
  const match = AUTHORITY.exec(authority);
  const port = match ? Number(match[2]) : 0;
  if (!match || port < 1 || port > 65535) {
    throw new ProtocolError(
      400,
      ErrorCode.BadProxyRequest,
      `CONNECT needs a target of the form host:port (such as example.com:443), got ${JSON.stringify(authority.slice(0, 200))}.`,
    );
  }
  return { targetHost: match[1], port, display: `${match[1]}:${port}` };
}
