import type { Server } from 'node:http';
import { Client } from 'undici';
import { HEADERS_TIMEOUT_MS, KEEP_ALIVE_TIMEOUT_MS } from './app.js';
import { startTestServer, type TestServer } from './testing/test-server.js';

describe('the HTTP server towards the gateway', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it('keeps idle connections longer than the callers do (65 s), headers timeout above it', () => {
    const http = server.app.getHttpServer() as Server;
    expect(KEEP_ALIVE_TIMEOUT_MS).toBeGreaterThan(60_000);
    expect(http.keepAliveTimeout).toBe(KEEP_ALIVE_TIMEOUT_MS);
    expect(http.headersTimeout).toBe(HEADERS_TIMEOUT_MS);
    expect(http.headersTimeout).toBeGreaterThan(http.keepAliveTimeout);
  });

  it('serves several calls over one kept-alive connection, errors included', async () => {
    const http = server.app.getHttpServer() as Server;
    let connections = 0;
    const count = () => void (connections += 1);
    http.on('connection', count);
    const client = new Client(server.url);
    try {
      for (let i = 0; i < 3; i++) {
        const res = await client.request({
          method: 'GET',
          path: '/proxy/response',
          headers: {
            'x-connection-id': '0b0c6a1e-6f1f-4d47-9a53-4a3c3c8f7c11',
            'x-chunk-index': '0',
          },
        });
        expect(res.statusCode).toBe(404);
        await res.body.dump();
      }
      expect(connections).toBe(1);
    } finally {
      http.off('connection', count);
      await client.close();
    }
  });
});
