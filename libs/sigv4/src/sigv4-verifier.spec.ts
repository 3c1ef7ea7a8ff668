import { createHash, createHmac } from 'node:crypto';
import { Sha256 } from '@aws-crypto/sha256-js';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import {
  canonicalQuery,
  canonicalUri,
  splitTarget,
} from './canonical-request.js';
import { SIGNATURE_MISMATCH_MESSAGE } from './refusals.js';
import {
  EMPTY_PAYLOAD_SHA256,
  signedPayloadHash,
  verifySigV4,
  type SigV4Request,
  type SigV4Verdict,
  type SigV4VerifierOptions,
} from './sigv4-verifier.js';

const AKID = 'AKIDEXAMPLEGATEWAY';
const SECRET = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
const HOST = '127.0.0.1:9080';
const SIGNED_AT = new Date('2026-11-25T12:20:00Z');

const options: SigV4VerifierOptions = {
  region: 'us-east-1',
  service: 'execute-api',
  credentials: new Map([
    [AKID, SECRET],
    ['AKIDOTHER', 'another-secret'],
  ]),
};

/** What the SDK's HTTP handler puts on the wire for a query value: encodeURIComponent plus !'()*. */
function wireEncode(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

interface SignInput {
  method?: string;
  /** The path as it goes on the wire (already URI-encoded), as the SDK passes it to the signer. */
  path: string;
  query?: Record<string, string | string[]>;
  headers?: Record<string, string>;
  body?: string | Buffer;
  region?: string;
  service?: string;
  accessKeyId?: string;
  secret?: string;
  sessionToken?: string;
  applyChecksum?: boolean;
  signingDate?: Date;
}

/** Signs with smithy's SignatureV4 (what the AWS SDK and proxy-client use) and returns the request as the gateway receives it. */
async function signed(input: SignInput): Promise<SigV4Request> {
  const signer = new SignatureV4({
    service: input.service ?? 'execute-api',
    region: input.region ?? 'us-east-1',
    sha256: Sha256,
    credentials: {
      accessKeyId: input.accessKeyId ?? AKID,
      secretAccessKey: input.secret ?? SECRET,
      sessionToken: input.sessionToken,
    },
    applyChecksum: input.applyChecksum,
  });
  const body =
    typeof input.body === 'string' ? Buffer.from(input.body) : input.body;
  const request = new HttpRequest({
    method: input.method ?? 'GET',
    protocol: 'http:',
    hostname: '127.0.0.1',
    port: 9080,
    path: input.path,
    query: input.query ?? {},
    headers: { host: HOST, ...input.headers },
    body,
  });
  const out = await signer.sign(request, {
    signingDate: input.signingDate ?? SIGNED_AT,
  });
  const query = Object.entries(input.query ?? {})
    .flatMap(([k, v]) =>
      (Array.isArray(v) ? v : [v]).map(
        (x) => `${wireEncode(k)}=${wireEncode(x)}`,
      ),
    )
    .join('&');
  return {
    method: out.method,
    target: query ? `${out.path}?${query}` : out.path,
    headers: Object.entries(out.headers),
    body: body ?? Buffer.alloc(0),
    now: SIGNED_AT,
  };
}

function refusal(verdict: SigV4Verdict): {
  status: number;
  errorType?: string;
  message: string;
} {
  if (verdict.ok) throw new Error('expected a refusal, got ok');
  return verdict.refusal;
}

function withHeader(
  req: SigV4Request,
  name: string,
  value: string | undefined,
): SigV4Request {
  const headers = req.headers.filter(
    ([n]) => n.toLowerCase() !== name.toLowerCase(),
  );
  return {
    ...req,
    headers: value === undefined ? headers : [...headers, [name, value]],
  };
}

describe('verifySigV4 against smithy SignatureV4 signatures', () => {
  it('accepts a signed GET without a stage path', async () => {
    const verdict = verifySigV4(
      await signed({ path: '/proxy/response' }),
      options,
    );
    expect(verdict).toMatchObject({ ok: true, accessKeyId: AKID, form: 'aws' });
  });

  it('accepts a signed POST with a body under a stage path', async () => {
    const req = await signed({
      method: 'POST',
      path: '/prod/proxy/chunk',
      headers: {
        'content-type': 'application/octet-stream',
        'x-connection-id': '0b0c6a1e-6f1f-4d47-9a53-4a3c3c8f7c11',
      },
      body: Buffer.from([0, 1, 2, 255, 254]),
    });
    expect(verifySigV4(req, options)).toMatchObject({ ok: true });
  });

  it('accepts query strings with special characters, repeated names and unsorted order', async () => {
    const req = await signed({
      path: '/prod/search',
      query: {
        z: 'last',
        'a key': 'x y&z=1',
        plus: 'c+d',
        reserved: "!'()*~",
        unicode: 'grüße/日本',
        empty: '',
        multi: ['b', 'a'],
      },
    });
    expect(req.target).toContain('a%20key=x%20y%26z%3D1');
    expect(verifySigV4(req, options)).toMatchObject({ ok: true, form: 'aws' });
  });

  it('accepts a path with spaces and unicode (each segment encoded twice)', async () => {
    const path = `/prod/files/${wireEncode('my file ü.txt')}/${wireEncode('a+b')}`;
    const req = await signed({ path });
    expect(req.target).toBe('/prod/files/my%20file%20%C3%BC.txt/a%2Bb');
    expect(verifySigV4(req, options)).toMatchObject({ ok: true, form: 'aws' });
  });

  it('accepts session credentials and reports the token', async () => {
    const req = await signed({
      path: '/prod/x',
      sessionToken: 'FwoGZXIvYXdzE//token+/=',
    });
    expect(
      req.headers.some(([n]) => n.toLowerCase() === 'x-amz-security-token'),
    ).toBe(true);
    expect(verifySigV4(req, options)).toMatchObject({
      ok: true,
      sessionToken: true,
    });
  });

  it('accepts requests with and without the X-Amz-Content-Sha256 header', async () => {
    const withHash = await signed({ method: 'PUT', path: '/x', body: 'abc' });
    const withoutHash = await signed({
      method: 'PUT',
      path: '/x',
      body: 'abc',
      applyChecksum: false,
    });
    const has = (r: SigV4Request): boolean =>
      r.headers.some(([n]) => n === 'x-amz-content-sha256');
    expect(has(withHash)).toBe(true);
    expect(has(withoutHash)).toBe(false);
    expect(verifySigV4(withHash, options).ok).toBe(true);
    expect(verifySigV4(withoutHash, options).ok).toBe(true);
  });

  it('accepts a date exactly five minutes old and one five minutes ahead', async () => {
    const req = await signed({ path: '/x' });
    const past = { ...req, now: new Date(SIGNED_AT.getTime() + 5 * 60_000) };
    const ahead = { ...req, now: new Date(SIGNED_AT.getTime() - 5 * 60_000) };
    expect(verifySigV4(past, options).ok).toBe(true);
    expect(verifySigV4(ahead, options).ok).toBe(true);
  });

  it('accepts the query and path re-encoded differently on the wire (AWS canonicalizes)', async () => {
    const req = await signed({ path: '/x', query: { t: '~a b' } });
    expect(req.target).toBe('/x?t=~a%20b');
    const reencoded = { ...req, target: '/x?t=%7ea%20b' };
    expect(verifySigV4(reencoded, options).ok).toBe(true);
  });

  it('accepts an HTTP Date header instead of X-Amz-Date (signed as ISO 8601 basic)', () => {
    // Signed by hand following the AWS documentation: smithy always sends X-Amz-Date.
    const date = 'Wed, 25 Nov 2026 12:19:30 GMT';
    const hash = (s: string): string =>
      createHash('sha256').update(s).digest('hex');
    const canonical = [
      'GET',
      '/x',
      '',
      `date:${date}\nhost:${HOST}\n`,
      'date;host',
      hash(''),
    ].join('\n');
    const stringToSign = [
      'AWS4-HMAC-SHA256',
      '20261125T121930Z',
      '20261125/us-east-1/execute-api/aws4_request',
      hash(canonical),
    ].join('\n');
    let key: Buffer | string = `AWS4${SECRET}`;
    for (const part of ['20261125', 'us-east-1', 'execute-api', 'aws4_request'])
      key = createHmac('sha256', key).update(part).digest();
    const signature = createHmac('sha256', key)
      .update(stringToSign)
      .digest('hex');
    const req: SigV4Request = {
      method: 'GET',
      target: '/x',
      headers: [
        ['Host', HOST],
        ['Date', date],
        [
          'Authorization',
          `AWS4-HMAC-SHA256 Credential=${AKID}/20261125/us-east-1/execute-api/aws4_request, SignedHeaders=date;host, Signature=${signature}`,
        ],
      ],
      body: Buffer.alloc(0),
      now: SIGNED_AT,
    };
    expect(verifySigV4(req, options)).toMatchObject({ ok: true });
    expect(
      verifySigV4(
        withHeader(req, 'Date', 'Wed, 25 Nov 2026 12:19:31 GMT'),
        options,
      ).ok,
    ).toBe(false);
  });

  describe('refuses tampered requests', () => {
    it('body changed after signing', async () => {
      const req = await signed({ method: 'POST', path: '/x', body: 'hello' });
      const r = refusal(
        verifySigV4({ ...req, body: Buffer.from('hellO') }, options),
      );
      expect(r).toEqual({
        status: 403,
        errorType: 'InvalidSignatureException',
        message: SIGNATURE_MISMATCH_MESSAGE,
      });
    });

    it('body changed when X-Amz-Content-Sha256 is not sent either', async () => {
      const req = await signed({
        method: 'POST',
        path: '/x',
        body: 'hello',
        applyChecksum: false,
      });
      const verdict = verifySigV4(
        { ...req, body: Buffer.from('other') },
        options,
      );
      expect(refusal(verdict).message).toBe(SIGNATURE_MISMATCH_MESSAGE);
    });

    it('UNSIGNED-PAYLOAD', async () => {
      const req = await signed({
        method: 'POST',
        path: '/x',
        body: 'hello',
        headers: { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
      });
      const verdict = verifySigV4(req, options);
      expect(refusal(verdict).message).toBe(SIGNATURE_MISMATCH_MESSAGE);
      expect(verdict.ok || verdict.reason).toMatch(/UNSIGNED-PAYLOAD/);
    });

    it('signed header changed', async () => {
      const req = await signed({
        path: '/x',
        headers: { 'x-connection-id': 'aaaa' },
      });
      const r = refusal(
        verifySigV4(withHeader(req, 'x-connection-id', 'bbbb'), options),
      );
      expect(r.message).toBe(SIGNATURE_MISMATCH_MESSAGE);
    });

    it('path or query changed', async () => {
      const req = await signed({ path: '/prod/x', query: { a: '1' } });
      expect(verifySigV4({ ...req, target: '/prod/y?a=1' }, options).ok).toBe(
        false,
      );
      expect(verifySigV4({ ...req, target: '/prod/x?a=2' }, options).ok).toBe(
        false,
      );
      expect(verifySigV4({ ...req, method: 'DELETE' }, options).ok).toBe(false);
    });

    it('wrong secret', async () => {
      const req = await signed({ path: '/x', secret: 'not-the-secret' });
      expect(refusal(verifySigV4(req, options))).toEqual({
        status: 403,
        errorType: 'InvalidSignatureException',
        message: SIGNATURE_MISMATCH_MESSAGE,
      });
    });

    it('unknown access key', async () => {
      const req = await signed({ path: '/x', accessKeyId: 'AKIDUNKNOWN' });
      expect(refusal(verifySigV4(req, options))).toEqual({
        status: 403,
        errorType: 'UnrecognizedClientException',
        message: 'The security token included in the request is invalid.',
      });
    });

    it('wrong region', async () => {
      const req = await signed({ path: '/x', region: 'eu-west-1' });
      expect(refusal(verifySigV4(req, options))).toEqual({
        status: 403,
        errorType: 'InvalidSignatureException',
        message:
          "Credential should be scoped to a valid region, not 'eu-west-1'. ",
      });
    });

    it('wrong service, and both wrong', async () => {
      const service = await signed({ path: '/x', service: 's3' });
      expect(refusal(verifySigV4(service, options)).message).toBe(
        "Credential should be scoped to correct service: 'execute-api'. ",
      );
      const both = await signed({
        path: '/x',
        service: 'lambda',
        region: 'us-west-2',
      });
      expect(refusal(verifySigV4(both, options)).message).toBe(
        "Credential should be scoped to a valid region, not 'us-west-2'. Credential should be scoped to correct service: 'execute-api'. ",
      );
    });

    it('signed too long ago, with AWS wording', async () => {
      const req = await signed({
        path: '/x',
        signingDate: new Date('2026-11-25T12:00:00Z'),
      });
      expect(refusal(verifySigV4(req, options))).toEqual({
        status: 403,
        errorType: 'InvalidSignatureException',
        message:
          'Signature expired: 20261125T120000Z is now earlier than 20261125T121500Z (20261125T122000Z - 5 min.)',
      });
    });

    it('signed in the future', async () => {
      const req = await signed({
        path: '/x',
        signingDate: new Date('2026-11-25T12:30:00Z'),
      });
      expect(refusal(verifySigV4(req, options)).message).toBe(
        'Signature not yet current: 20261125T123000Z is still later than 20261125T122500Z (20261125T122000Z + 5 min.)',
      );
    });

    it('X-Amz-Date changed after signing', async () => {
      const req = await signed({ path: '/x' });
      const r = refusal(
        verifySigV4(withHeader(req, 'x-amz-date', '20261125T122001Z'), options),
      );
      expect(r.message).toBe(SIGNATURE_MISMATCH_MESSAGE);
    });
  });

  describe('refuses malformed authentication with AWS wording', () => {
    it('no Authorization header', async () => {
      const req = withHeader(
        await signed({ path: '/x' }),
        'authorization',
        undefined,
      );
      expect(refusal(verifySigV4(req, options))).toEqual({
        status: 403,
        errorType: 'MissingAuthenticationTokenException',
        message: 'Missing Authentication Token',
      });
    });

    it('a bearer token', async () => {
      const req = withHeader(
        await signed({ path: '/x' }),
        'authorization',
        'Bearer abc',
      );
      expect(refusal(verifySigV4(req, options))).toEqual({
        status: 403,
        errorType: 'IncompleteSignatureException',
        message:
          "'abc' not a valid key=value pair (missing equal-sign) in Authorization header: 'Bearer abc'.",
      });
    });

    it('missing parameters and date', async () => {
      const req = withHeader(
        withHeader(
          await signed({ path: '/x' }),
          'authorization',
          'AWS4-HMAC-SHA256 Credential=AKID/20261125/us-east-1/execute-api/aws4_request',
        ),
        'x-amz-date',
        undefined,
      );
      expect(refusal(verifySigV4(req, options)).message).toBe(
        "Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=AWS4-HMAC-SHA256 Credential=AKID/20261125/us-east-1/execute-api/aws4_request",
      );
    });

    it('host not signed', async () => {
      const req = await signed({ path: '/x' });
      const auth = req.headers.find(([n]) => n === 'authorization')?.[1] ?? '';
      const tampered = withHeader(
        req,
        'authorization',
        auth.replace('SignedHeaders=host;', 'SignedHeaders='),
      );
      expect(refusal(verifySigV4(tampered, options))).toEqual({
        status: 403,
        errorType: 'IncompleteSignatureException',
        message:
          "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
      });
    });

    it('a date that is not ISO 8601 basic format', async () => {
      const req = withHeader(
        await signed({ path: '/x' }),
        'x-amz-date',
        '2026-11-25T12:20:00Z',
      );
      expect(refusal(verifySigV4(req, options)).message).toBe(
        "Date must be in ISO-8601 'basic format'. Got '2026-11-25T12:20:00Z'. See http://en.wikipedia.org/wiki/ISO_8601",
      );
    });

    it('a credential with too few parts', async () => {
      const req = await signed({ path: '/x' });
      const auth = req.headers.find(([n]) => n === 'authorization')?.[1] ?? '';
      const tampered = withHeader(
        req,
        'authorization',
        auth.replace(`Credential=${AKID}/`, 'Credential='),
      );
      expect(refusal(verifySigV4(tampered, options)).message).toMatch(
        /^Credential must have exactly 5 slash-delimited elements/,
      );
    });
  });
});

describe('a payload hash instead of the body', () => {
  /** The request without its body: what a verifier that has not read it yet knows. */
  function withoutBody(req: SigV4Request, payloadHash: string): SigV4Request {
    return {
      method: req.method,
      target: req.target,
      headers: req.headers,
      now: req.now,
      payloadHash,
    };
  }

  it('verifies with the signed X-Amz-Content-Sha256 before the body is read', async () => {
    const req = await signed({ method: 'POST', path: '/x', body: 'abc' });
    const claimed = signedPayloadHash(req.headers);
    expect(claimed).toBe(createHash('sha256').update('abc').digest('hex'));
    expect(
      verifySigV4(withoutBody(req, claimed as string), options),
    ).toMatchObject({ ok: true });
  });

  it('verifies with a hash the caller computed itself, and refuses a wrong one', async () => {
    const req = await signed({
      method: 'POST',
      path: '/x',
      body: 'abc',
      applyChecksum: false,
    });
    const right = createHash('sha256').update('abc').digest('hex');
    const wrong = createHash('sha256').update('abd').digest('hex');
    expect(verifySigV4(withoutBody(req, right), options).ok).toBe(true);
    expect(refusal(verifySigV4(withoutBody(req, wrong), options)).message).toBe(
      SIGNATURE_MISMATCH_MESSAGE,
    );
  });

  it('vouches for no hash that is absent, unsigned, not hex, or UNSIGNED-PAYLOAD', async () => {
    const unsigned = await signed({
      method: 'POST',
      path: '/x',
      body: 'abc',
      applyChecksum: false,
    });
    expect(signedPayloadHash(unsigned.headers)).toBeUndefined();
    const added = withHeader(
      unsigned,
      'x-amz-content-sha256',
      EMPTY_PAYLOAD_SHA256,
    );
    expect(signedPayloadHash(added.headers)).toBeUndefined();
    const unsignedPayload = await signed({
      method: 'POST',
      path: '/x',
      headers: { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
    });
    expect(signedPayloadHash(unsignedPayload.headers)).toBeUndefined();
  });
});

describe('canonical request pieces', () => {
  it('splits origin-form and absolute-form targets', () => {
    expect(splitTarget('/a/b?x=1&y')).toEqual({ path: '/a/b', query: 'x=1&y' });
    expect(splitTarget('http://h:1/a?q')).toEqual({ path: '/a', query: 'q' });
  });

  it('double-encodes path segments and removes dot and empty segments', () => {
    expect(canonicalUri('/prod/a%20b//./c/../d/')).toBe('/prod/a%2520b/d/');
    expect(canonicalUri('/')).toBe('/');
  });

  it('sorts by name then value, and gives a bare name an empty value', () => {
    expect(canonicalQuery('b=2&a=2&a=1&c&a-b=0')).toBe('a=1&a=2&a-b=0&b=2&c=');
    expect(canonicalQuery('x=%zz&y=a+b&z=%e2%82%ac')).toBe(
      'x=%25zz&y=a%2Bb&z=%E2%82%AC',
    );
  });
});
