import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { GatewayClient } from './gateway-client.js';

/** SHA-256 computations with node:crypto (the body hash), counted. */
const hashing = vi.hoisted(() => ({ sha256: 0 }));
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  return {
    ...actual,
    createHash: (algorithm: string) => {
      if (algorithm === 'sha256') hashing.sha256 += 1;
      return actual.createHash(algorithm);
    },
  };
});

describe('GatewayClient body hash', () => {
  it('hashes a chunk once, however many attempts it takes', async () => {
    let n = 0;
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        n += 1;
        if (n <= 3) res.writeHead(503).end('{"message":"busy"}');
        else res.writeHead(200).end('{}');
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const client = new GatewayClient(
      {
        gatewayUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        region: 'us-east-1',
        service: 'execute-api',
        callTimeoutMs: 5000,
        connections: 8,
        maxRetries: 5,
        baseMs: 1,
      },
      { accessKeyId: 'AKIDHASH', secretAccessKey: 'secret' },
    );
    try {
      hashing.sha256 = 0;
      const answer = await client.call({
        method: 'POST',
        path: '/proxy/chunk',
        body: Buffer.alloc(256 * 1024, 1),
      });
      expect(answer).toMatchObject({ status: 200, attempts: 4 });
      expect(hashing.sha256).toBe(1);
    } finally {
      await client.close();
      server.close();
    }
  });
});
