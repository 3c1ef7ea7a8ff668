import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { Sha256 } from '@aws-crypto/sha256-js';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';

export interface ReceivedRequest {
  method: string;
  /** Path and query as received (`req.url`). */
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface SigningKey {
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  service: string;
}

/** Parses `20261125T173300Z`. */
function parseAmzDate(value: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!m) throw new Error(`bad X-Amz-Date ${value}`);
  return new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
}

/**
 * Test support: recomputes the SigV4 signature of a request as received,
 * independently of the code under test (only the headers the request says
 * it signed, the path as it arrived, the bytes as they arrived), and tells
 * whether it matches the `Authorization` sent. `pathOverride` recomputes
 * for another path, to show the path really is part of the signature.
 */
export async function verifySignature(
  received: ReceivedRequest,
  key: SigningKey,
  pathOverride?: string,
): Promise<{ valid: boolean; expected: string; got: string }> {
  const got = String(received.headers.authorization ?? '');
  const signedHeaders =
    /SignedHeaders=([^,]+)/.exec(got)?.[1]?.split(';') ?? [];
  const headers: Record<string, string> = {};
  for (const name of signedHeaders) {
    const value = received.headers[name];
    if (value !== undefined)
      headers[name] = Array.isArray(value) ? value.join(',') : value;
  }
  const [path, query = ''] = (pathOverride ?? received.url).split('?');
  const request = new HttpRequest({
    method: received.method,
    protocol: 'http:',
    hostname: String(received.headers.host ?? '').replace(/:\d+$/, ''),
    path,
    query: Object.fromEntries(new URLSearchParams(query)),
    headers,
    body: received.body,
  });
  const signer = new SignatureV4({
    credentials: {
      accessKeyId: key.accessKeyId,
      secretAccessKey: key.secretAccessKey,
    },
    region: key.region,
    service: key.service,
    sha256: Sha256,
  });
  const signed = await signer.sign(request, {
    signingDate: parseAmzDate(String(received.headers['x-amz-date'] ?? '')),
  });
  const expected = String(signed.headers.authorization);
  // The signer trusts a sent X-Amz-Content-Sha256; check it is the body's.
  const claimed = received.headers['x-amz-content-sha256'];
  const bodyHash = createHash('sha256').update(received.body).digest('hex');
  const bodyOk = claimed === undefined || claimed === bodyHash;
  return { valid: bodyOk && expected === got, expected, got };
}
