import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { ProtocolError } from '@app/protocol';
import {
  startTestServer,
  type TestServer,
} from '../../../proxy-server/src/testing/test-server.js';
import { GatewayClient } from '../gateway/gateway-client.js';
import { ApplicationGoneError } from '../relay/exchange.js';
import { parseConnectAuthority } from './connect-authority.js';
import { TunnelApi } from './tunnel-api.js';
import { TunnelSession } from './tunnel-session.js';

/** TunnelApi that records the size of every upstream call. */
class CountingTunnelApi extends TunnelApi {
  readonly sent: number[] = [];
  /** Added to every upstream call: a gateway round trip of this many ms. */
  latencyMs = 0;
  override async sendSegment(
    ...args: Parameters<TunnelApi['sendSegment']>
  ): Promise<void> {
    this.sent.push(args[2].length);
    if (this.latencyMs > 0) await sleep(this.latencyMs);
    await super.sendSegment(...args);
  }
}

/** A connected pair of TCP sockets: the application's end and the proxy's end. */
async function socketPair() {
  const server = net.createServer({ allowHalfOpen: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const app = net.connect({
    port: (server.address() as AddressInfo).port,
    host: '127.0.0.1',
    allowHalfOpen: true,
  });
  const [proxySide] = await accepted;
  server.close();
  return { app, proxySide };
}

describe('parseConnectAuthority', () => {
  it('reads host:port, IPv6 in brackets', () => {
    expect(parseConnectAuthority('example.com:443')).toEqual({
      targetHost: 'example.com',
      port: 443,
      display: 'example.com:443',
    });
    expect(parseConnectAuthority('[::1]:8443').targetHost).toBe('[::1]');
  });

  it.each([
    'example.com',
    'example.com:0',
    'example.com:65536',
    ':443',
    'a b:1',
    'http://x:1',
  ])('refuses %j with 400 bad_proxy_request', (authority) => {
    expect(() => parseConnectAuthority(authority)).toThrow(
      new ProtocolError(
        400,
        'bad_proxy_request',
        `CONNECT needs a target of the form host:port (such as example.com:443), got ${JSON.stringify(authority)}.`,
      ),
    );
  });
});

describe('TunnelSession (real proxy-server, real sockets)', () => {
  let server: TestServer;
  let gateway: GatewayClient;
  let target: net.Server;
  let targetPort: number;
  const farEnds: net.Socket[] = [];

  beforeAll(async () => {
    target = net.createServer({ allowHalfOpen: true }, (socket) => {
      socket.on('error', () => undefined);
      farEnds.push(socket);
    });
    target.listen(0, '127.0.0.1');
    await once(target, 'listening');
    targetPort = (target.address() as AddressInfo).port;
    server = await startTestServer({
      CONNECT_ALLOWED_PORTS: String(targetPort),
      TUNNEL_WAIT_MS: '2000',
    });
    // Straight to proxy-server: it ignores the signature the gateway would check.
    gateway = new GatewayClient(
      {
        gatewayUrl: server.url,
        region: 'us-east-1',
        service: 'execute-api',
        callTimeoutMs: 10_000,
        connections: 16,
        maxRetries: 2,
        baseMs: 5,
      },
      { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' },
    );
  });
  afterAll(async () => {
    for (const s of farEnds) s.destroy();
    target?.close();
    await gateway?.close();
    await server?.close();
  });

  async function openTunnel(chunkSize: number) {
    const api = new CountingTunnelApi(gateway);
    const id = randomUUID();
    const before = farEnds.length;
    await api.open({
      tunnel_id: id,
      target_host: '127.0.0.1',
      port: targetPort,
      segment_size: Math.max(chunkSize, 1024),
    });
    await vi.waitFor(() => expect(farEnds.length).toBe(before + 1));
    const { app, proxySide } = await socketPair();
    const session = new TunnelSession(id, proxySide, { api, chunkSize });
    return { api, id, app, far: farEnds[before], session };
  }

  it('coalesces writes made while a call is in flight into the next call', async () => {
    const { api, app, far, session } = await openTunnel(64 * 1024);
    api.latencyMs = 20;
    const running = session.run();
    const received: Buffer[] = [];
    far.on('data', (d: Buffer) => received.push(d));
    // 200 small writes, one per millisecond or so, while each call takes 20 ms.
    const writes = 200;
    for (let i = 0; i < writes; i++) {
      app.write(`<${i}>`);
      await sleep(1);
    }
    const expected = Array.from({ length: writes }, (_, i) => `<${i}>`).join(
      '',
    );
    await vi.waitFor(() =>
      expect(Buffer.concat(received).toString()).toBe(expected),
    );
    // One call in flight at a time; the rest waited and left together.
    expect(api.sent.length).toBeLessThan(writes / 5);
    // …and the first bytes did not wait for company (a write or two at most).
    expect(api.sent[0]).toBeLessThanOrEqual('<0><1>'.length);
    app.end();
    far.end();
    await running;
    expect(session.traffic.bytesUp).toBe(expected.length);
  });

  it('never sends more than CHUNK_SIZE in one call, and keeps order', async () => {
    const chunkSize = 16 * 1024;
    const { api, app, far, session } = await openTunnel(chunkSize);
    const running = session.run();
    const data = randomBytes(1024 * 1024);
    const hash = createHash('sha256');
    let bytes = 0;
    far.on('data', (d: Buffer) => {
      hash.update(d);
      bytes += d.length;
    });
    const farEnded = once(far, 'end');
    app.end(data);
    await farEnded;
    expect(bytes).toBe(data.length);
    expect(hash.digest('hex')).toBe(
      createHash('sha256').update(data).digest('hex'),
    );
    expect(Math.max(...api.sent)).toBeLessThanOrEqual(chunkSize);
    far.end();
    await running;
  });

  it('delivers the target bytes and its FIN to the application, which can still send', async () => {
    const { app, far, session } = await openTunnel(64 * 1024);
    const running = session.run();
    let got = '';
    app.on('data', (d: Buffer) => (got += d.toString()));
    const appEnded = once(app, 'end');
    far.end('from the target');
    await appEnded;
    expect(got).toBe('from the target');
    let upstream = '';
    far.on('data', (d: Buffer) => (upstream += d.toString()));
    const farEnded = once(far, 'end');
    app.end('late');
    await farEnded;
    expect(upstream).toBe('late');
    await running;
    expect(session.traffic).toMatchObject({ bytesUp: 4, bytesDown: 15 });
  });

  it('fails with the server’s error when the tunnel vanished, destroying the application socket', async () => {
    const { id, app, session } = await openTunnel(64 * 1024);
    const running = session.run();
    app.on('error', () => undefined);
    app.resume();
    const appSawTheEnd = Promise.race([once(app, 'end'), once(app, 'close')]);
    await new TunnelApi(gateway).close(id);
    const error = await running.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as ProtocolError).message).toContain(
      `Tunnel ${id} is unknown, closed or expired`,
    );
    await appSawTheEnd;
  });

  it('fails with ApplicationGoneError when the application resets', async () => {
    const { app, far, session } = await openTunnel(64 * 1024);
    const running = session.run();
    app.resetAndDestroy();
    expect(await running.catch((e: unknown) => e)).toBeInstanceOf(
      ApplicationGoneError,
    );
    far.destroy();
  });
});
