import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { parseAuthorization } from './authorization-header.js';
import {
  canonicalHeaders,
  canonicalQuery,
  canonicalRequest,
  canonicalUri,
  splitTarget,
  type RawHeaderPairs,
} from './canonical-request.js';
import { type SigV4Refusal, SigV4Refusals } from './refusals.js';

/**
 * Verifies AWS Signature Version 4 on a request the way API Gateway does for
 * IAM-authorized methods (`execute-api`). Pure: no I/O, no framework types,
 * the clock passed in, so the local gateway and proxy-server (SERVER_AUTH=sigv4)
 * share it.
 *
 * The payload hash is computed from the body received, or given by a
 * caller that hashed the body itself (see {@link SigV4Request}); a signed
 * `X-Amz-Content-Sha256` must equal it (so `UNSIGNED-PAYLOAD` is refused,
 * as AWS does for execute-api).
 */

/**
 * What the verifier needs to know about one request: its line and headers,
 * and the body or the body's SHA-256. The hash is for callers that do not
 * hold the body as one buffer: one that hashed it piece by piece as it
 * arrived, or one that verifies before reading the body, taking the signed
 * {@link signedPayloadHash} as the hash, and then checks the body against
 * it as it reads it.
 */
export interface SigV4Request {
  method: string;
  /** Raw request target as received: path and query, e.g. `/prod/a%20b?x=1`. */
  target: string;
  headers: RawHeaderPairs;
  /** The body received; absent means empty (unless `payloadHash` is given). */
  body?: Uint8Array;
  /** The body's SHA-256 in hex, used instead of hashing `body`. */
  payloadHash?: string;
  /** The time the request arrived. */
  now: Date;
}

export interface SigV4VerifierOptions {
  region: string;
  service: string;
  /** Secret access keys by access key id. */
  credentials: ReadonlyMap<string, string>;
  /** Largest accepted difference between the request's date and `now` (AWS: 5 minutes). */
  maxSkewMs?: number;
  /**
   * Also accept a signature over the path and query exactly as sent (not
   * re-encoded, not sorted). curl before 8.x (`--aws-sigv4`, e.g. Debian's
   * 7.88) signs that form; it covers the same bytes that are forwarded, so
   * accepting it weakens nothing. Default true.
   */
  acceptRawTargetForm?: boolean;
}

export type SigV4Verdict =
  | {
      ok: true;
      accessKeyId: string;
      /** A session token was sent (it cannot be checked locally, so it is only noted). */
      sessionToken: boolean;
      /** Which canonical form matched. */
      form: 'aws' | 'raw-target';
    }
  | {
      ok: false;
      /** The answer AWS would give. */
      refusal: SigV4Refusal;
      /** Why, in words for the verifying app's debug log (never contains secrets). */
      reason: string;
    };

const FIVE_MINUTES_MS = 5 * 60_000;
const ISO_BASIC = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;
const SIGNATURE_HEX = /^[0-9a-f]{64}$/;

/** First value of a header (case-insensitive name), if present. */
function headerValue(
  headers: RawHeaderPairs,
  name: string,
): string | undefined {
  for (const [n, v] of headers) if (n.toLowerCase() === name) return v;
  return undefined;
}

function refuse(refusal: SigV4Refusal, reason: string): SigV4Verdict {
  return { ok: false, refusal, reason };
}

/** `20261125T120000Z` for a Date (whole seconds). */
export function toAmzDate(date: Date): string {
  return date
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:]/g, '');
}

/** Parses `X-Amz-Date` (ISO 8601 basic) or, failing that, an HTTP `Date`. */
function requestDate(
  amzDate: string | undefined,
  httpDate: string | undefined,
): { ok: true; date: Date; amzDate: string } | { ok: false; got: string } {
  if (amzDate !== undefined) {
    const m = ISO_BASIC.exec(amzDate.trim());
    if (!m) return { ok: false, got: amzDate };
    const [, y, mo, d, h, mi, s] = m.map(Number);
    const date = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
    // Reject impossible dates such as 20261340T990000Z that Date.UTC would roll over.
    if (toAmzDate(date) !== amzDate.trim()) return { ok: false, got: amzDate };
    return { ok: true, date, amzDate: amzDate.trim() };
  }
  const ms = Date.parse(httpDate ?? '');
  if (Number.isNaN(ms)) return { ok: false, got: httpDate ?? '' };
  const date = new Date(Math.floor(ms / 1000) * 1000);
  return { ok: true, date, amzDate: toAmzDate(date) };
}

function hmac(key: Uint8Array | string, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The signing key: HMAC chain over date, region, service and the terminator. */
export function signingKey(
  secret: string,
  shortDate: string,
  region: string,
  service: string,
): Buffer {
  let key = hmac(`AWS4${secret}`, shortDate);
  key = hmac(key, region);
  key = hmac(key, service);
  return hmac(key, 'aws4_request');
}

function signatureMatches(expectedHex: string, givenHex: string): boolean {
  if (!SIGNATURE_HEX.test(givenHex)) return false;
  return timingSafeEqual(
    Buffer.from(expectedHex, 'hex'),
    Buffer.from(givenHex, 'hex'),
  );
}

/** Verifies one request's SigV4 signature; see the module comment. */
export function verifySigV4(
  request: SigV4Request,
  options: SigV4VerifierOptions,
): SigV4Verdict {
  const { headers } = request;
  const authorization = headerValue(headers, 'authorization');
  if (authorization === undefined || authorization.trim() === '') {
    return refuse(
      SigV4Refusals.missingAuthenticationToken(),
      'no Authorization header',
    );
  }

  const amzDateHeader = headerValue(headers, 'x-amz-date');
  const httpDateHeader = headerValue(headers, 'date');
  const parsed = parseAuthorization(
    authorization,
    amzDateHeader !== undefined || httpDateHeader !== undefined,
  );
  if (!parsed.ok) {
    return refuse(
      SigV4Refusals.incompleteSignature(parsed.message),
      'malformed Authorization header',
    );
  }
  const auth = parsed.value;

  const date = requestDate(amzDateHeader, httpDateHeader);
  if (!date.ok) {
    return refuse(
      SigV4Refusals.incompleteSignature(
        `Date must be in ISO-8601 'basic format'. Got '${date.got}'. See http://en.wikipedia.org/wiki/ISO_8601`,
      ),
      'unparseable request date',
    );
  }

  const scope = auth.credential.split('/');
  if (scope.length !== 5) {
    return refuse(
      SigV4Refusals.incompleteSignature(
        `Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '${auth.credential}'`,
      ),
      'malformed credential scope',
    );
  }
  const [accessKeyId, scopeDate, scopeRegion, scopeService, terminator] = scope;
  if (terminator !== 'aws4_request') {
    return refuse(
      SigV4Refusals.invalidSignature(
        `Credential should be scoped with a valid terminator: 'aws4_request', not '${terminator}'. `,
      ),
      'wrong scope terminator',
    );
  }
  let scopeProblems = '';
  if (scopeRegion !== options.region)
    scopeProblems += `Credential should be scoped to a valid region, not '${scopeRegion}'. `;
  if (scopeService !== options.service)
    scopeProblems += `Credential should be scoped to correct service: '${options.service}'. `;
  if (scopeProblems) {
    return refuse(
      SigV4Refusals.invalidSignature(scopeProblems),
      `credential scoped to ${scopeRegion}/${scopeService}, verifier is ${options.region}/${options.service}`,
    );
  }

  if (!auth.signedHeaders.includes('host')) {
    return refuse(
      SigV4Refusals.incompleteSignature(
        "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
      ),
      'host is not a signed header',
    );
  }

  const secret = options.credentials.get(accessKeyId);
  if (secret === undefined) {
    return refuse(
      SigV4Refusals.unrecognizedClient(),
      `unknown access key id ${accessKeyId}`,
    );
  }

  if (scopeDate !== date.amzDate.slice(0, 8)) {
    return refuse(
      SigV4Refusals.invalidSignature(
        `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${scopeDate}' != '${date.amzDate.slice(0, 8)}', from '${date.amzDate}'.`,
      ),
      'credential scope date differs from the request date',
    );
  }

  const maxSkew = options.maxSkewMs ?? FIVE_MINUTES_MS;
  const nowMs = Math.floor(request.now.getTime() / 1000) * 1000;
  const skewMinutes = `${Math.round(maxSkew / 60_000)} min.`;
  if (date.date.getTime() < nowMs - maxSkew) {
    return refuse(
      SigV4Refusals.invalidSignature(
        `Signature expired: ${date.amzDate} is now earlier than ${toAmzDate(new Date(nowMs - maxSkew))} (${toAmzDate(new Date(nowMs))} - ${skewMinutes})`,
      ),
      'request date too far in the past',
    );
  }
  if (date.date.getTime() > nowMs + maxSkew) {
    return refuse(
      SigV4Refusals.invalidSignature(
        `Signature not yet current: ${date.amzDate} is still later than ${toAmzDate(new Date(nowMs + maxSkew))} (${toAmzDate(new Date(nowMs))} + ${skewMinutes})`,
      ),
      'request date too far in the future',
    );
  }

  const payloadHash =
    request.payloadHash?.toLowerCase() ??
    sha256Hex(request.body ?? new Uint8Array(0));
  const declaredHash = headerValue(headers, 'x-amz-content-sha256');
  if (
    declaredHash !== undefined &&
    auth.signedHeaders.includes('x-amz-content-sha256') &&
    declaredHash.trim().toLowerCase() !== payloadHash
  ) {
    return refuse(
      SigV4Refusals.invalidSignature(),
      declaredHash.trim() === 'UNSIGNED-PAYLOAD'
        ? 'UNSIGNED-PAYLOAD is not accepted: the body must be signed'
        : 'x-amz-content-sha256 does not match the body received',
    );
  }

  const key = signingKey(secret, scopeDate, scopeRegion, scopeService);
  const credentialScope = scope.slice(1).join('/');
  const headerBlock = canonicalHeaders(headers, auth.signedHeaders);
  const { path, query } = splitTarget(request.target);
  const forms: Array<{
    form: 'aws' | 'raw-target';
    uri: string;
    query: string;
  }> = [{ form: 'aws', uri: canonicalUri(path), query: canonicalQuery(query) }];
  if (options.acceptRawTargetForm ?? true) {
    const raw = { form: 'raw-target' as const, uri: path, query };
    if (raw.uri !== forms[0].uri || raw.query !== forms[0].query)
      forms.push(raw);
  }
  for (const candidate of forms) {
    const canonical = canonicalRequest({
      method: request.method,
      uri: candidate.uri,
      query: candidate.query,
      headers: headerBlock,
      signedHeaders: auth.signedHeaders,
      payloadHash,
    });
    const stringToSign = [
      'AWS4-HMAC-SHA256',
      date.amzDate,
      credentialScope,
      sha256Hex(canonical),
    ].join('\n');
    const expected = createHmac('sha256', key)
      .update(stringToSign, 'utf8')
      .digest('hex');
    if (signatureMatches(expected, auth.signature)) {
      return {
        ok: true,
        accessKeyId,
        sessionToken:
          headerValue(headers, 'x-amz-security-token') !== undefined,
        form: candidate.form,
      };
    }
  }
  return refuse(
    SigV4Refusals.invalidSignature(),
    'signature does not match (wrong secret, or the request was changed after signing)',
  );
}

/** SHA-256 of the empty body, in lower-case hex. */
export const EMPTY_PAYLOAD_SHA256 = sha256Hex(new Uint8Array(0));

const SHA256_HEX = /^[0-9a-fA-F]{64}$/;

/**
 * The body hash a request vouches for: `X-Amz-Content-Sha256` when it is a
 * SHA-256 in hex and a signed header (listed in the Authorization header's
 * SignedHeaders), so that the signature covers it. Otherwise `undefined`:
 * absent, unsigned, `UNSIGNED-PAYLOAD` or malformed, and then only hashing
 * the body itself tells what was signed.
 */
export function signedPayloadHash(headers: RawHeaderPairs): string | undefined {
  const declared = headerValue(headers, 'x-amz-content-sha256')?.trim();
  const authorization = headerValue(headers, 'authorization');
  if (!declared || !SHA256_HEX.test(declared) || !authorization) {
    return undefined;
  }
  const parsed = parseAuthorization(authorization, true);
  if (
    !parsed.ok ||
    !parsed.value.signedHeaders.includes('x-amz-content-sha256')
  ) {
    return undefined;
  }
  return declared.toLowerCase();
}
