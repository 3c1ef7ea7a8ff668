import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { ErrorCode, ProtocolError } from '@app/protocol';

/** The challenge of every 407: Basic credentials for the realm `chunkgate`. */
export const PROXY_AUTHENTICATE = 'Basic realm="chunkgate"';

const BASIC = /^Basic[ \t]+([A-Za-z0-9+/=]+)[ \t]*$/i;

function sha256(data: Buffer | string): Buffer {
  return createHash('sha256').update(data).digest();
}

/**
 * Basic proxy authentication (CLIENT_PROXY_AUTH=user:password).
 *
 * Whoever can use the proxy spends the AWS credentials it signs with, so on
 * an address others can reach it must know who is asking. The credentials
 * are compared as SHA-256 digests with `timingSafeEqual`: the digests are
 * always 32 bytes, so the comparison takes the same time whatever was sent
 * and however long it was, and the configured secret is held only as its
 * digest. The header is never logged nor forwarded (the prepare step drops
 * every `Proxy-*` header).
 */
export class ProxyAuth {
  private readonly expected: Buffer;

  constructor(credentials: string) {
    this.expected = sha256(Buffer.from(credentials, 'utf8'));
  }

  /**
   * Undefined when the request carries the configured credentials, else the
   * 407 to answer: it says whether they were missing or wrong, never what
   * they are.
   */
  check(req: Pick<IncomingMessage, 'headers'>): ProtocolError | undefined {
    const header = req.headers['proxy-authorization'];
    const token = typeof header === 'string' ? BASIC.exec(header)?.[1] : null;
    // Compared even when nothing usable was sent: no shortcut to time.
    const given = sha256(token ? Buffer.from(token, 'base64') : '');
    const valid = timingSafeEqual(given, this.expected) && Boolean(token);
    if (valid) return undefined;
    const how =
      'send the user and password of its CLIENT_PROXY_AUTH as Basic Proxy-Authorization, e.g. curl -x http://USER:PASSWORD@HOST:PORT http://target/... (or --proxy-user USER:PASSWORD).';
    return new ProtocolError(
      407,
      ErrorCode.ProxyAuthRequired,
      header === undefined
        ? `This proxy requires authentication: ${how}`
        : `The Proxy-Authorization credentials are not valid for this proxy: ${how}`,
    );
  }
}
