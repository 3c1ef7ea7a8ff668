/**
 * The pieces of a SigV4 canonical request, computed from the request exactly
 * as it arrived on the wire (raw request target, raw header pairs).
 *
 * https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv4-create-signed-request.html
 */

/** A header list as `[name, value]` pairs, in arrival order, repeats kept. */
export type RawHeaderPairs = ReadonlyArray<readonly [string, string]>;

const HEX = '0123456789ABCDEF';

/** RFC 3986 unreserved characters: the only bytes SigV4 leaves unencoded. */
function isUnreserved(byte: number): boolean {
  return (
    (byte >= 0x41 && byte <= 0x5a) || // A-Z
    (byte >= 0x61 && byte <= 0x7a) || // a-z
    (byte >= 0x30 && byte <= 0x39) || // 0-9
    byte === 0x2d || // -
    byte === 0x2e || // .
    byte === 0x5f || // _
    byte === 0x7e // ~
  );
}

/**
 * SigV4's URI encoding: every byte of the UTF-8 form that is not unreserved
 * becomes `%XX` with upper-case hex (the same as smithy's `escapeUri`, which
 * is `encodeURIComponent` plus `!'()*`).
 */
export function uriEncode(value: string): string {
  return encodeBytes(Buffer.from(value, 'utf8'));
}

function encodeBytes(bytes: Iterable<number>): string {
  let out = '';
  for (const byte of bytes) {
    out += isUnreserved(byte)
      ? String.fromCharCode(byte)
      : `%${HEX[byte >> 4]}${HEX[byte & 15]}`;
  }
  return out;
}

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x41 && code <= 0x46) return code - 0x37;
  if (code >= 0x61 && code <= 0x66) return code - 0x57;
  return -1;
}

/**
 * Percent-decodes to bytes and re-encodes the SigV4 way, so `%7e`, `~` and
 * `%7E` all come out as `~` and `%2b`, `+` as `%2B`. A `%` not followed by
 * two hex digits is a literal percent sign. `+` is a literal plus, not a
 * space: AWS signers never send `+` for a space, they send `%20`.
 */
function reencode(raw: string): string {
  const bytes: number[] = [];
  const utf8 = Buffer.from(raw, 'utf8');
  for (let i = 0; i < utf8.length; i++) {
    const b = utf8[i];
    if (b === 0x25 && i + 2 < utf8.length) {
      const hi = hexValue(utf8[i + 1]);
      const lo = hexValue(utf8[i + 2]);
      if (hi >= 0 && lo >= 0) {
        bytes.push(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    bytes.push(b);
  }
  return encodeBytes(bytes);
}

/** Splits a raw request target (`/a/b?x=1`) into path and query (without `?`). */
export function splitTarget(target: string): { path: string; query: string } {
  let rest = target;
  // Absolute-form (`GET http://host/path`) is legal HTTP/1.1: sign its path.
  if (!rest.startsWith('/')) {
    const m = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?#]*/.exec(rest);
    rest = m ? rest.slice(m[0].length) : rest;
    if (!rest.startsWith('/')) rest = `/${rest}`;
  }
  const hash = rest.indexOf('#');
  if (hash !== -1) rest = rest.slice(0, hash);
  const q = rest.indexOf('?');
  return q === -1
    ? { path: rest, query: '' }
    : { path: rest.slice(0, q), query: rest.slice(q + 1) };
}

/**
 * Canonical URI for every service but S3: the path as sent (already
 * URI-encoded once), dot segments and empty segments removed, then each
 * segment URI-encoded a second time — `/a%20b` becomes `/a%2520b`. This is
 * what AWS computes and what smithy's SignatureV4 (`uriEscapePath: true`,
 * the AWS SDK's default) produces when given the wire path.
 */
export function canonicalUri(rawPath: string): string {
  const segments: string[] = [];
  for (const segment of rawPath.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') segments.pop();
    else segments.push(segment);
  }
  const leading = rawPath.startsWith('/') ? '/' : '';
  const trailing = segments.length > 0 && rawPath.endsWith('/') ? '/' : '';
  return `${leading}${segments.map(uriEncode).join('/')}${trailing}`;
}

/**
 * Canonical query string: every `name=value` pair decoded and re-encoded
 * the SigV4 way, a name without `=` taking an empty value, sorted by name
 * and then by value (byte order of the encoded forms).
 */
export function canonicalQuery(rawQuery: string): string {
  if (rawQuery === '') return '';
  const pairs: Array<[string, string]> = [];
  for (const part of rawQuery.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = eq === -1 ? part : part.slice(0, eq);
    const value = eq === -1 ? '' : part.slice(eq + 1);
    pairs.push([reencode(name), reencode(value)]);
  }
  pairs.sort(([an, av], [bn, bv]) =>
    an < bn ? -1 : an > bn ? 1 : av < bv ? -1 : av > bv ? 1 : 0,
  );
  return pairs.map(([n, v]) => `${n}=${v}`).join('&');
}

/** A header value as SigV4 signs it: trimmed, runs of spaces and tabs collapsed to one space. */
export function canonicalHeaderValue(value: string): string {
  return value
    .replace(/[\r\n]/g, ' ')
    .replace(/[ \t]+/g, ' ')
    .trim();
}

/**
 * The canonical headers block for the names in `signedHeaders` (lower-case,
 * in the order the client listed them): `name:value\n` per name, repeated
 * headers' values joined with commas. A signed header that is absent gets an
 * empty value, which then simply fails to match the client's signature.
 */
export function canonicalHeaders(
  headers: RawHeaderPairs,
  signedHeaders: readonly string[],
): string {
  const values = new Map<string, string[]>();
  for (const [name, value] of headers) {
    const lower = name.toLowerCase();
    const list = values.get(lower);
    if (list) list.push(canonicalHeaderValue(value));
    else values.set(lower, [canonicalHeaderValue(value)]);
  }
  return signedHeaders
    .map((name) => `${name}:${(values.get(name) ?? []).join(',')}\n`)
    .join('');
}

/** The canonical request: the six lines every SigV4 signature covers. */
export function canonicalRequest(parts: {
  method: string;
  uri: string;
  query: string;
  headers: string;
  signedHeaders: readonly string[];
  payloadHash: string;
}): string {
  return [
    parts.method,
    parts.uri,
    parts.query,
    parts.headers,
    parts.signedHeaders.join(';'),
    parts.payloadHash,
  ].join('\n');
}
