import {
  ErrorCode,
  pairsFromRawHeaders,
  ProtocolError,
  stripHopByHop,
  type HeaderPairs,
} from '@app/protocol';

/** What the prepare step needs of the application's request (a subset of IncomingMessage). */
export interface RawProxyRequest {
  method?: string;
  url?: string;
  rawHeaders: string[];
  headers: Record<string, string | string[] | undefined>;
}

/** A plain HTTP request to relay through the gateway. */
export interface HttpProxyRequest {
  kind: 'http';
  method: string;
  scheme: 'http';
  /** Host name or IP, IPv6 in brackets, no port: `target_host` of the protocol. */
  targetHost: string;
  port: number;
  /** Origin-form path and query, exactly as the application sent it. */
  path: string;
  /** The end-to-end headers for the target. */
  headers: HeaderPairs;
  /** Content-Length, or null for a chunked body of unknown size. */
  bodySize: number | null;
  /** The target URL without userinfo, for logs. */
  displayUrl: string;
}

/** A CONNECT request: a tunnel to `authority` (host:port). */
export interface ConnectProxyRequest {
  kind: 'connect';
  authority: string;
  displayUrl: string;
}

export type ProxyRequest = HttpProxyRequest | ConnectProxyRequest;

export interface PrepareOptions {
  /** `http://HOST:PORT` of this proxy, for messages. */
  proxyUrl: string;
  /** MAX_BODY_SIZE. */
  maxBodySize: number;
}

const HOST = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)$/;
const ABSOLUTE = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^#]*)/;

function badRequest(message: string): ProtocolError {
  return new ProtocolError(400, ErrorCode.BadProxyRequest, message);
}

/** A URL for logs: userinfo removed, length bounded. */
export function redactUrl(url: string | undefined): string {
  return (url ?? '')
    .replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#@]*@/i, '$1')
    .slice(0, 2048);
}

/**
 * Headers for the target: the application's, minus hop-by-hop headers (and
 * those `Connection` names), minus every `Proxy-*` header (meant for this
 * proxy), minus `Host` (the server rebuilds it from the target) and `Expect`
 * (answered here: the server receives the whole body before it forwards).
 */
export function prepareTargetHeaders(
  rawHeaders: readonly string[],
): HeaderPairs {
  return stripHopByHop(pairsFromRawHeaders(rawHeaders), [
    'host',
    'expect',
  ]).filter(([name]) => !name.toLowerCase().startsWith('proxy-'));
}

/** Content-Length as a number, null for a chunked body, 0 when there is no body. */
function bodySizeOf(
  headers: RawProxyRequest['headers'],
  maxBodySize: number,
): number | null {
  if (headers['transfer-encoding'] !== undefined) return null;
  const raw = headers['content-length'];
  if (raw === undefined) return 0;
  const value = Array.isArray(raw) ? raw[0] : raw;
  if (!/^\d+$/.test(value.trim())) {
    throw badRequest(
      `Content-Length must be a number of bytes, got ${JSON.stringify(value.slice(0, 40))}.`,
    );
  }
  const size = Number(value.trim());
  if (size > maxBodySize) {
    throw new ProtocolError(
      413,
      ErrorCode.BodyTooLarge,
      `The request body (${size} bytes) is larger than this proxy's MAX_BODY_SIZE of ${maxBodySize} bytes.`,
    );
  }
  return size;
}

/**
 * Step 1 of the pipeline: check the proxy request and prepare what the
 * strategies need. Throws a {@link ProtocolError} (400, 413) for anything
 * this proxy cannot carry, before any gateway call.
 *
 * ```
 * CONNECT host:port ─────────────▶ { kind: 'connect' }
 * GET http://host:port/p?q ──────▶ { kind: 'http', host, port, path, headers, bodySize }
 * GET /p (origin-form) ──────────▶ 400 bad_proxy_request
 * GET ftp://… / unparsable ──────▶ 400 bad_proxy_request
 * Content-Length > MAX_BODY_SIZE ▶ 413 body_too_large
 * ```
 */
export function prepareProxyRequest(
  req: RawProxyRequest,
  options: PrepareOptions,
): ProxyRequest {
  const method = req.method ?? 'GET';
  const url = req.url ?? '';
  if (method === 'CONNECT') {
    return { kind: 'connect', authority: url, displayUrl: redactUrl(url) };
  }
  const absolute = ABSOLUTE.exec(url);
  if (!absolute) {
    throw badRequest(
      `This is an HTTP proxy: send absolute-form requests (curl -x ${options.proxyUrl} http://target/...), not "${method} ${url.slice(0, 100)}".`,
    );
  }
  const scheme = absolute[1].toLowerCase();
  if (scheme !== 'http') {
    throw badRequest(
      `Only http:// URLs can be proxied, got ${scheme}://: https:// needs CONNECT tunnels, which curl, browsers and SDKs open by themselves when the proxy URL is http://.`,
    );
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw badRequest(
      `The request URI ${JSON.stringify(url.slice(0, 200))} is not a valid URL.`,
    );
  }
  const targetHost = parsed.hostname;
  if (!targetHost || !HOST.test(targetHost)) {
    throw badRequest(
      `The request URI ${JSON.stringify(redactUrl(url).slice(0, 200))} has no valid host name.`,
    );
  }
  const rest = absolute[3];
  const path = rest.startsWith('/') ? rest : `/${rest}`;
  const port = parsed.port ? Number(parsed.port) : 80;
  return {
    kind: 'http',
    method,
    scheme: 'http',
    targetHost,
    port,
    path,
    headers: prepareTargetHeaders(req.rawHeaders),
    bodySize: bodySizeOf(req.headers, options.maxBodySize),
    displayUrl: `http://${parsed.host}${path}`.slice(0, 2048),
  };
}
