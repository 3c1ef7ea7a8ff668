/** The only signing algorithm the gateway verifies (SigV4a is not supported). */
export const SIGV4_ALGORITHM = 'AWS4-HMAC-SHA256';

/** The parts of `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`. */
export interface ParsedAuthorization {
  algorithm: string;
  /** `AKID/20261125/us-east-1/execute-api/aws4_request` */
  credential: string;
  /** Lower-case names, in the order the client listed them. */
  signedHeaders: string[];
  /** Lower-case hex. */
  signature: string;
}

export type AuthorizationParse =
  { ok: true; value: ParsedAuthorization } | { ok: false; message: string };

/**
 * Parses the Authorization header the way AWS does, failing with AWS's own
 * wording: a component without `=` is named as such; otherwise every
 * missing parameter (and a missing date header) is listed in one message,
 * followed by the header as received.
 */
export function parseAuthorization(
  header: string,
  hasDateHeader: boolean,
): AuthorizationParse {
  const trimmed = header.trim();
  const space = trimmed.search(/\s/);
  const algorithm = space === -1 ? trimmed : trimmed.slice(0, space);
  const rest = space === -1 ? '' : trimmed.slice(space + 1);

  const params = new Map<string, string>();
  for (const raw of rest.split(',')) {
    const part = raw.trim();
    if (part === '') continue;
    const eq = part.indexOf('=');
    if (eq === -1) {
      return {
        ok: false,
        message: `'${part}' not a valid key=value pair (missing equal-sign) in Authorization header: '${trimmed}'.`,
      };
    }
    params.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }

  const missing: string[] = [];
  for (const name of ['Credential', 'Signature', 'SignedHeaders']) {
    if (!params.get(name))
      missing.push(`Authorization header requires '${name}' parameter.`);
  }
  if (!hasDateHeader) {
    missing.push(
      "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
    );
  }
  if (missing.length > 0) {
    return {
      ok: false,
      message: `${missing.join(' ')} Authorization=${trimmed}`,
    };
  }
  if (algorithm !== SIGV4_ALGORITHM) {
    return {
      ok: false,
      message: `Unsupported AWS 'algorithm': '${algorithm}'. Sign with ${SIGV4_ALGORITHM}.`,
    };
  }
  return {
    ok: true,
    value: {
      algorithm,
      credential: params.get('Credential') as string,
      signedHeaders: (params.get('SignedHeaders') as string)
        .split(';')
        .map((h) => h.trim().toLowerCase())
        .filter((h) => h !== ''),
      signature: (params.get('Signature') as string).toLowerCase(),
    },
  };
}
