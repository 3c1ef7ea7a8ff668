import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { GatewayClient } from './gateway-client.js';

/**
 * Bytes fed to node:crypto's SHA-256 (the body hash, and the signer's
 * small hashes of the canonical request), counted.
 */
const hashing = vi.hoisted(() => ({ bytes: 0 }));
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  return {
    ...actual,
    createHash: (algorithm: string) => {
      const hash = actual.createHash(algorithm);
      if (algorithm !== 'sha256') return hash;
      const update = hash.update.bind(hash);
      hash.update = ((data: string | NodeJS.ArrayBufferView) => {
        hashing.bytes +=
          typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
        return update(data);
      }) as typeof hash.update;
      return hash;
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
      hashing.bytes = 0;
      const body = Buffer.alloc(256 * 1024, 1);
      const answer = await client.call({
        method: 'POST',
        path: '/proxy/chunk',
        body,
      });
      expect(answer).toMatchObject({ status: 200, attempts: 4 });
      // The body once; four canonical requests of a few hundred bytes each.
      expect(hashing.bytes).toBeGreaterThanOrEqual(body.length);
      expect(hashing.bytes).toBeLessThan(body.length + 4 * 2048);
    } finally {
      await client.close();
      server.close();
    }
  });
});
