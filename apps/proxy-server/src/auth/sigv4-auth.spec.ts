import { createHash, randomUUID } from 'node:crypto';
import { Sha256 } from '@aws-crypto/sha256-js';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { request } from 'undici';
import {
  LOCAL_DEV_ACCESS_KEY_ID,
  LOCAL_DEV_SECRET_ACCESS_KEY,
} from '@app/protocol';
import { SIGNATURE_MISMATCH_MESSAGE } from '@app/sigv4';
import { GatewayClient } from '../../../proxy-client/src/gateway/gateway-client.js';
import { startTarget, type Target } from '../../../../test/support/target.js';
import { ConnectionsService } from '../connections/connections.service.js';
import {
  type Answer,
  ManualClock,
  startTestServer,
  type TestServer,
} from '../testing/test-server.js';

interface SignOptions {
  /** Send the body's hash in a signed X-Amz-Content-Sha256, as proxy-client does (default true). */
  payloadHash?: boolean;
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Replaces the body after signing (a tampered call). */
  sendInstead?: Buffer;
  /** Header changes after signing. */
  alter?: Record<string, string>;
  /** Default: the server's clock. */
  signingDate?: Date;
}

describe('SERVER_AUTH=sigv4', () => {
  let target: Target;
  let server: TestServer;

  beforeAll(async () => {
    target = await startTarget();
    // The signature's date is checked against the server's clock: now.
    server = await startTestServer(
      { SERVER_AUTH: 'sigv4', MAX_CHUNK_SIZE: String(64 * 1024) },
      new ManualClock(Date.now()),
    );
  });
  afterAll(async () => {
    await server?.close();
    await target?.close();
  });

  /** Signs a call with smithy's SignatureV4 (what proxy-client and the AWS SDK use) and sends it. */
  async function signed(
    method: string,
    path: string,
    headers: Record<string, string> = {},
    body: Buffer | string = Buffer.alloc(0),
    options: SignOptions = {},
  ): Promise<Answer> {
    const url = new URL(`${server.url}${path}`);
    const bytes = Buffer.from(body);
    const signer = new SignatureV4({
      credentials: {
        accessKeyId: options.accessKeyId ?? LOCAL_DEV_ACCESS_KEY_ID,
        secretAccessKey: options.secretAccessKey ?? LOCAL_DEV_SECRET_ACCESS_KEY,
      },
      region: 'us-east-1',
      service: 'execute-api',
      sha256: Sha256,
      applyChecksum: false,
    });
    const hashHeader: Record<string, string> =
      (options.payloadHash ?? true)
        ? {
            'x-amz-content-sha256': createHash('sha256')
              .update(bytes)
              .digest('hex'),
          }
        : {};
    const toSign = new HttpRequest({
      method,
      protocol: 'http:',
      hostname: url.hostname,
      port: Number(url.port),
      path: url.pathname,
      headers: { host: url.host, ...hashHeader, ...headers },
      body: bytes,
    });
    const out = await signer.sign(toSign, {
      signingDate: options.signingDate ?? new Date(server.clock.now()),
    });
    const res = await request(url, {
      method: method as 'GET',
      headers: { ...out.headers, ...options.alter },
      body: method === 'GET' ? undefined : (options.sendInstead ?? bytes),
    });
    const data = Buffer.from(await res.body.arrayBuffer());
    return {
      status: res.statusCode,
      headers: res.headers,
      body: data,
      json: <T>() => JSON.parse(data.toString()) as T,
    };
  }

  const head = (fields: Record<string, unknown> = {}) =>
    JSON.stringify({
      connection_id: randomUUID(),
      target_host: '127.0.0.1',
      port: target.port,
      method: 'POST',
      path: '/echo',
      ...fields,
    });
  const json = { 'content-type': 'application/json' };

  async function known(id: string): Promise<boolean> {
    return server.app
      .get(ConnectionsService)
      .require(id)
      .then(
        () => true,
        () => false,
      );
  }

  describe.each([
    ['with a signed X-Amz-Content-Sha256 (as proxy-client sends)', true],
    ['without X-Amz-Content-Sha256 (the body is hashed)', false],
  ])('accepts signed calls %s', (_how, payloadHash) => {
    it('through a whole exchange: connection, chunks, response, release', async () => {
      const id = randomUUID();
      const created = await signed(
        'POST',
        '/proxy/connection',
        json,
        head({ connection_id: id, body_size: 5 }),
        { payloadHash },
      );
      expect(created.status).toBe(201);
      const chunk = (index: number, data: string, final: boolean) =>
        signed(
          'POST',
          '/proxy/chunk',
          {
            'x-connection-id': id,
            'x-chunk-index': String(index),
            'x-chunk-final': String(final),
          },
          data,
          { payloadHash },
        );
      expect((await chunk(1, 'lo', true)).status).toBe(200);
      expect((await chunk(0, 'hel', false)).json()).toMatchObject({
        complete: true,
        received_bytes: 5,
      });
      const answer = await signed('GET', '/proxy/response', {
        'x-connection-id': id,
        'x-chunk-index': '0',
      });
      expect(answer.status).toBe(200);
      const echo = JSON.parse(answer.body.toString()) as { sha256: string };
      expect(echo.sha256).toBe(
        createHash('sha256').update('hello').digest('hex'),
      );
      const released = await signed('DELETE', '/proxy/connection', {
        'x-connection-id': id,
      });
      expect(released.status).toBe(204);
    });

    it('in one POST /proxy/exchange', async () => {
      const json = Buffer.from(head({ body_size: 3 }));
      const res = await signed(
        'POST',
        '/proxy/exchange',
        {
          'content-type': 'application/octet-stream',
          'x-head-length': String(json.length),
          'x-chunk-final': 'true',
        },
        Buffer.concat([json, Buffer.from('abc')]),
        { payloadHash },
      );
      expect(res.status).toBe(200);
      expect(res.headers['x-target-status']).toBe('200');
    });
  });

  it("accepts proxy-client's own GatewayClient, pointed at the server directly", async () => {
    const client = (secretAccessKey: string) =>
      new GatewayClient(
        {
          gatewayUrl: server.url,
          region: 'us-east-1',
          service: 'execute-api',
          callTimeoutMs: 10_000,
          connections: 2,
          maxRetries: 0,
          baseMs: 1,
        },
        { accessKeyId: LOCAL_DEV_ACCESS_KEY_ID, secretAccessKey },
      );
    const json = Buffer.from(head({ body_size: 2 }));
    const call = {
      method: 'POST' as const,
      path: '/proxy/exchange',
      headers: {
        'content-type': 'application/octet-stream',
        'x-head-length': String(json.length),
        'x-chunk-final': 'true',
      },
      body: Buffer.concat([json, Buffer.from('hi')]),
    };
    const good = client(LOCAL_DEV_SECRET_ACCESS_KEY);
    const bad = client('not-the-secret');
    try {
      const answer = await good.call(call);
      expect(answer.status).toBe(200);
      expect(answer.headers['x-target-status']).toBe('200');
      const refused = await bad.call({
        ...call,
        body: Buffer.concat([
          Buffer.from(head({ body_size: 2 })),
          Buffer.from('hi'),
        ]),
      });
      expect(refused.status).toBe(403);
      expect(JSON.parse(refused.body.toString())).toMatchObject({
        error: 'signature_invalid',
      });
    } finally {
      await Promise.all([good.close(), bad.close()]);
    }
  });

  it('keeps each route its own body limit for a body it did not read itself', async () => {
    const id = randomUUID();
    await signed(
      'POST',
      '/proxy/connection',
      json,
      head({ connection_id: id }),
    );
    const res = await signed(
      'POST',
      '/proxy/chunk',
      { 'x-connection-id': id, 'x-chunk-index': '0' },
      Buffer.alloc(64 * 1024 + 1),
      { payloadHash: false },
    );
    expect(res.status).toBe(413);
    expect(res.json().error).toBe('chunk_too_large');
  });

  describe('refuses with 403 signature_invalid', () => {
    it('an unsigned call, before its JSON is parsed', async () => {
      for (const body of [head(), '{"not json']) {
        const res = await server.call('POST', '/proxy/connection', json, body);
        expect(res.status).toBe(403);
        expect(res.json()).toEqual({
          error: 'signature_invalid',
          message:
            'SigV4 authentication failed: Missing Authentication Token. (MissingAuthenticationTokenException) This server verifies signatures itself (SERVER_AUTH=sigv4): sign every call with credentials it knows (SERVER_AUTH_CREDENTIALS), for its AWS_REGION and SERVICE.',
        });
      }
      const unknownRoute = await server.call('GET', '/nope');
      expect(unknownRoute.status).toBe(403);
      expect((await server.call('GET', '/')).status).toBe(403);
    });

    it('a body changed after signing, against the signed hash: nothing is opened', async () => {
      const id = randomUUID();
      const body = head({ connection_id: id });
      const res = await signed('POST', '/proxy/connection', json, body, {
        sendInstead: Buffer.from(body.replace('/echo', '/ech0')),
      });
      expect(res.status).toBe(403);
      expect(res.json().error).toBe('signature_invalid');
      expect(res.json().message).toContain(
        'the body differs from the signed X-Amz-Content-Sha256',
      );
      expect(await known(id)).toBe(false);
    });

    it('a body changed after signing, without a signed hash', async () => {
      const id = randomUUID();
      const body = head({ connection_id: id });
      const res = await signed('POST', '/proxy/connection', json, body, {
        payloadHash: false,
        sendInstead: Buffer.from(body.replace('/echo', '/ech0')),
      });
      expect(res.status).toBe(403);
      expect(res.json().message).toContain(SIGNATURE_MISMATCH_MESSAGE);
      expect(await known(id)).toBe(false);
    });

    it('a signed header changed after signing', async () => {
      const id = randomUUID();
      await signed(
        'POST',
        '/proxy/connection',
        json,
        head({ connection_id: id }),
      );
      const res = await signed(
        'DELETE',
        '/proxy/connection',
        { 'x-connection-id': id },
        '',
        { alter: { 'x-connection-id': randomUUID() } },
      );
      expect(res.status).toBe(403);
      expect(await known(id)).toBe(true);
    });

    it('a wrong secret, and an unknown access key id', async () => {
      const wrong = await signed('GET', '/proxy/response', {}, '', {
        secretAccessKey: 'not-the-secret',
      });
      expect(wrong.status).toBe(403);
      expect(wrong.json().message).toContain(SIGNATURE_MISMATCH_MESSAGE);
      const unknown = await signed('GET', '/proxy/response', {}, '', {
        accessKeyId: 'AKIDSOMEONEELSE',
      });
      expect(unknown.status).toBe(403);
      expect(unknown.json().message).toContain(
        'The security token included in the request is invalid.',
      );
    });

    it('a signature older than five minutes', async () => {
      const res = await signed('GET', '/proxy/response', {}, '', {
        signingDate: new Date(server.clock.now() - 5 * 60_000 - 1000),
      });
      expect(res.status).toBe(403);
      expect(res.json().message).toContain('Signature expired');
    });
  });
});
