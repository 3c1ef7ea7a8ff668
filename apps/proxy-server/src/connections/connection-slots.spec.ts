import { randomUUID } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { startTarget, type Target } from '../../../../test/support/target.js';
import { startTestServer, type TestServer } from '../testing/test-server.js';
import { ConnectionCleanupJob } from './connection-cleanup.job.js';
import { ConnectionSlots } from './connection-slots.js';

describe('MAX_CONNECTIONS', () => {
  let target: Target;
  let tcp: Server;
  const accepted: Socket[] = [];
  let server: TestServer;
  let slots: ConnectionSlots;
  /** A port nothing listens on (just freed): tunnels to it fail to connect. */
  let closedPort: number;

  beforeAll(async () => {
    target = await startTarget();
    // A TCP target for tunnels that keeps its connections open.
    tcp = createServer((socket) => accepted.push(socket));
    await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
    const gone = createServer();
    await new Promise<void>((resolve) => gone.listen(0, '127.0.0.1', resolve));
    closedPort = port(gone);
    await new Promise<void>((resolve) => gone.close(() => resolve()));
    server = await startTestServer({
      MAX_CONNECTIONS: '2',
      CONNECTION_TTL_MS: '60000',
      CONNECT_ALLOWED_PORTS: `${port(tcp)},${closedPort}`,
    });
    slots = server.app.get(ConnectionSlots);
  });
  afterAll(async () => {
    await server?.close();
    for (const socket of accepted) socket.destroy();
    await new Promise<void>((resolve) => tcp?.close(() => resolve()));
    await target?.close();
  });
  afterEach(async () => {
    // Every test starts with all slots free.
    server.clock.advance(3_600_000);
    await server.app.get(ConnectionCleanupJob).sweep();
    expect(slots.inUse).toBe(0);
  });

  function port(s: Server): number {
    const address = s.address();
    if (address === null || typeof address === 'string')
      throw new Error('not listening');
    return address.port;
  }

  function openTunnel(id = randomUUID(), to = port(tcp)) {
    return server.call(
      'POST',
      '/proxy/tunnel',
      { 'content-type': 'application/json' },
      JSON.stringify({ tunnel_id: id, target_host: '127.0.0.1', port: to }),
    );
  }

  function expectTooMany(
    res: Awaited<ReturnType<TestServer['call']>>,
    what: string,
  ) {
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('1');
    expect(res.json()).toEqual({
      error: 'too_many_connections',
      message: expect.stringMatching(
        new RegExp(
          `^proxy-server holds 2 connections and tunnels already \\(MAX_CONNECTIONS\\), so ${what} [0-9a-f-]+.* was not opened: try again in a moment\\.$`,
        ),
      ),
    });
  }

  it('answers one connection more with 503, Retry-After: 1 and too_many_connections', async () => {
    expect((await server.open({ port: target.port })).res.status).toBe(201);
    expect((await server.open({ port: target.port })).res.status).toBe(201);
    expectTooMany((await server.open({ port: target.port })).res, 'connection');
    const exchange = await server.exchangeCall({
      connection_id: randomUUID(),
      target_host: '127.0.0.1',
      port: target.port,
      method: 'GET',
      path: '/echo',
    });
    expectTooMany(exchange, 'connection');
  });

  it('frees the slot when a connection is released or expires', async () => {
    const first = await server.open({ port: target.port });
    await server.open({ port: target.port });
    expect(slots.inUse).toBe(2);
    expect(
      (
        await server.call('DELETE', '/proxy/connection', {
          'x-connection-id': first.id,
        })
      ).status,
    ).toBe(204);
    expect(slots.inUse).toBe(1);
    expect((await server.open({ port: target.port })).res.status).toBe(201);
    server.clock.advance(60_001);
    expect(await server.app.get(ConnectionCleanupJob).sweep()).toBe(2);
    expect(slots.inUse).toBe(0);
  });

  it('gives the slot back once the last response chunk was served, so lingering connections do not count', async () => {
    // Without this, FINISHED_LINGER_MS (30 s) of finished small requests
    // would fill MAX_CONNECTIONS under a steady load and refuse new ones.
    const small = () =>
      server.exchangeCall({
        connection_id: randomUUID(),
        target_host: '127.0.0.1',
        port: target.port,
        method: 'GET',
        path: '/status/200',
      });
    for (let i = 0; i < 3; i += 1) {
      const answer = await small();
      expect(answer.status).toBe(200);
      expect(answer.headers['x-more-chunks']).toBe('false');
    }
    expect(slots.inUse).toBe(0);
  });

  it('answers a retry of a connection it holds at the limit as a retry, not with 503', async () => {
    const head = {
      connection_id: randomUUID(),
      target_host: '127.0.0.1',
      port: target.port,
      method: 'GET',
      path: '/echo',
    };
    expect((await server.exchangeCall(head)).status).toBe(200);
    // The finished exchange gave its slot back: two more fill the limit.
    await server.open({ port: target.port });
    await server.open({ port: target.port });
    expect(slots.inUse).toBe(2);
    expect((await server.exchangeCall(head)).status).toBe(200);
    const again = await server.call(
      'POST',
      '/proxy/connection',
      { 'content-type': 'application/json' },
      JSON.stringify(head),
    );
    expect(again.status).toBe(409);
    expect(slots.inUse).toBe(2);
  });

  it('counts tunnels and connections together', async () => {
    expect((await openTunnel()).status).toBe(201);
    expect((await server.open({ port: target.port })).res.status).toBe(201);
    expectTooMany(await openTunnel(), 'tunnel');
    expectTooMany((await server.open({ port: target.port })).res, 'connection');
  });

  it('frees a tunnel slot when the tunnel is closed, and when it could not connect', async () => {
    const id = randomUUID();
    expect((await openTunnel(id)).status).toBe(201);
    expect(slots.inUse).toBe(1);
    expect(
      (await server.call('DELETE', '/proxy/tunnel', { 'x-tunnel-id': id }))
        .status,
    ).toBe(204);
    expect(slots.inUse).toBe(0);

    const refused = await openTunnel(randomUUID(), closedPort);
    expect(refused.status).toBe(502);
    expect(refused.json().message).toContain('ECONNREFUSED');
    expect(slots.inUse).toBe(0);
  });
});
