import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { startTestServer, type TestServer } from '../testing/test-server.js';
import { TunnelsService } from './tunnels.service.js';

/** A real TCP target on port 0 that records its sockets. */
async function startTcpTarget(onSocket: (socket: net.Socket) => void) {
  const sockets: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.push(socket);
    onSocket(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    sockets,
    close: async () => {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

type TcpTarget = Awaited<ReturnType<typeof startTcpTarget>>;

describe('tunnels (real TCP targets)', () => {
  let echo: TcpTarget;
  let server: TestServer;

  beforeAll(async () => {
    echo = await startTcpTarget((socket) => socket.pipe(socket));
    server = await startTestServer({
      CONNECT_ALLOWED_PORTS: String(echo.port),
      TUNNEL_WAIT_MS: '300',
    });
  });
  afterAll(async () => {
    await server?.close();
    await echo?.close();
  });

  const open = (fields: Record<string, unknown> = {}) => {
    const id = randomUUID();
    return server
      .call(
        'POST',
        '/proxy/tunnel',
        { 'content-type': 'application/json' },
        JSON.stringify({
          tunnel_id: id,
          target_host: '127.0.0.1',
          port: echo.port,
          ...fields,
        }),
      )
      .then((res) => ({ id, res }));
  };
  const send = (id: string, sequence: number, data: string, close = false) =>
    server.call(
      'POST',
      '/proxy/tunnel/send',
      {
        'x-tunnel-id': id,
        'x-sequence': String(sequence),
        'content-type': 'application/octet-stream',
        ...(close ? { 'x-tunnel-close': 'true' } : {}),
      },
      data,
    );
  const receive = (id: string, sequence: number) =>
    server.call('GET', '/proxy/tunnel/receive', {
      'x-tunnel-id': id,
      'x-sequence': String(sequence),
    });

  it('opens, carries bytes both ways and closes', async () => {
    const { id, res } = await open();
    expect(res.status).toBe(201);
    expect(res.json()).toEqual({
      tunnel_id: id,
      idle_timeout_ms: 300000,
      wait_ms: 300,
    });
    const sent = await send(id, 0, 'hello');
    expect(sent.status).toBe(200);
    expect(sent.json()).toEqual({
      tunnel_id: id,
      sequence: 0,
      received_bytes: 5,
    });
    const got = await receive(id, 0);
    expect(got.status).toBe(200);
    expect(got.headers['x-sequence']).toBe('0');
    expect(got.headers['x-tunnel-closed']).toBe('false');
    expect(got.body.toString()).toBe('hello');
    const closed = await server.call('DELETE', '/proxy/tunnel', {
      'x-tunnel-id': id,
    });
    expect(closed.status).toBe(204);
    expect((await receive(id, 1)).status).toBe(404);
  });
});
