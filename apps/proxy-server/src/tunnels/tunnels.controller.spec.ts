import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { ConnectionCleanupJob } from '../connections/connection-cleanup.job.js';
import { startTestServer, type TestServer } from '../testing/test-server.js';
import { TunnelsService } from './tunnels.service.js';

/** A real TCP target on port 0; `onSocket` decides what it does with each connection. */
async function startTcpTarget(onSocket: (socket: net.Socket) => void) {
  const sockets: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined); // resets are part of the tests
    onSocket(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    sockets,
    /** The next connection the target accepts. */
    next: async (): Promise<net.Socket> => {
      const before = sockets.length;
      await vi.waitFor(() => expect(sockets.length).toBeGreaterThan(before));
      return sockets[before];
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

type TcpTarget = Awaited<ReturnType<typeof startTcpTarget>>;

/** A port on which nothing listens (bound, then closed again). */
async function closedPort(): Promise<number> {
  const probe = net.createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as AddressInfo;
  probe.close();
  await once(probe, 'close');
  return port;
}

/**
 * Everything a socket receives until its peer's FIN, leaving the socket
 * open (an async iterator would destroy it: no half-close then).
 */
function readAll(socket: net.Socket): Promise<Buffer> {
  const parts: Buffer[] = [];
  socket.on('data', (part: Buffer) => parts.push(part));
  return once(socket, 'end').then(() => Buffer.concat(parts));
}

/** Resolves when the socket's peer closed (FIN or reset). */
function peerClosed(socket: net.Socket): Promise<unknown> {
  socket.resume();
  return Promise.race([once(socket, 'end'), once(socket, 'close')]);
}

describe('tunnels (real app, real TCP targets)', () => {
  let echo: TcpTarget;
  /** Does nothing by itself: each test drives the target's socket. */
  let manual: TcpTarget;
  let refusedPort: number;
  let server: TestServer;

  beforeAll(async () => {
    echo = await startTcpTarget((socket) => socket.pipe(socket));
    manual = await startTcpTarget(() => undefined);
    refusedPort = await closedPort();
    server = await startTestServer({
      CONNECT_ALLOWED_PORTS: `${echo.port}, ${manual.port},${refusedPort}`,
      TUNNEL_WAIT_MS: '400',
      TUNNEL_IDLE_TIMEOUT_MS: '60000',
      MAX_CHUNK_SIZE: String(64 * 1024),
    });
  });
  afterAll(async () => {
    await server?.close();
    await echo?.close();
    await manual?.close();
  });

  const open = (fields: Record<string, unknown> = {}, id = randomUUID()) =>
    server
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
  const openTo = async (target: TcpTarget, fields = {}) => {
    const accepted = target.next();
    const { id, res } = await open({ port: target.port, ...fields });
    expect(res.status).toBe(201);
    return { id, socket: await accepted };
  };
  const send = (
    id: string,
    sequence: number | string,
    data: string | Buffer,
    close = false,
  ) =>
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
  const receive = (id: string, sequence: number | string) =>
    server.call('GET', '/proxy/tunnel/receive', {
      'x-tunnel-id': id,
      'x-sequence': String(sequence),
    });
  const close = (id: string) =>
    server.call('DELETE', '/proxy/tunnel', { 'x-tunnel-id': id });
  const tunnelOf = (id: string) => {
    const tunnel = server.app.get(TunnelsService).find(id);
    if (!tunnel) throw new Error(`tunnel ${id} is not open`);
    return tunnel;
  };

  it('opens, carries bytes both ways and closes on DELETE', async () => {
    const { id, res } = await open();
    expect(res.status).toBe(201);
    expect(res.json()).toEqual({
      tunnel_id: id,
      idle_timeout_ms: 60000,
      wait_ms: 400,
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
    expect(got.headers['content-type']).toBe('application/octet-stream');
    expect(got.body.toString()).toBe('hello');

    expect((await close(id)).status).toBe(204);
    const gone = await receive(id, 1);
    expect(gone.status).toBe(404);
    expect(gone.json()).toEqual({
      error: 'connection_not_found',
      message: `Tunnel ${id} is unknown, closed or expired: open a new one with POST /proxy/tunnel.`,
    });
    expect((await close(id)).status).toBe(404);
  });

  it('refuses a port outside CONNECT_ALLOWED_PORTS with 403 connect_port_forbidden', async () => {
    const { res } = await open({ target_host: 'example.com', port: 22 });
    expect(res.status).toBe(403);
    expect(res.json()).toEqual({
      error: 'connect_port_forbidden',
      message: `CONNECT to example.com:22 refused: port 22 is not allowed; this server tunnels only to ports ${echo.port}, ${manual.port}, ${refusedPort} (CONNECT_ALLOWED_PORTS).`,
    });
  });

  it('answers 502 target_unreachable naming the cause when the target refuses', async () => {
    const { id, res } = await open({ port: refusedPort });
    expect(res.status).toBe(502);
    expect(res.json().error).toBe('target_unreachable');
    expect(res.json().message).toContain(
      `Target 127.0.0.1:${refusedPort} failed: the target refused the connection`,
    );
    expect(res.json().message).toContain('ECONNREFUSED');
    // Nothing is left behind: the id is free again.
    expect((await receive(id, 0)).status).toBe(404);
  });

  it('answers 502 when the target host is not found in DNS', async () => {
    const { res } = await open({
      target_host: 'no-such-host.invalid',
      port: echo.port,
    });
    expect(res.status).toBe(502);
    expect(res.json().error).toBe('target_unreachable');
    expect(res.json().message).toMatch(
      /Target no-such-host\.invalid:\d+ failed: .*DNS.*\((ENOTFOUND|EAI_AGAIN)/,
    );
  });

  it.each([
    [{ tunnel_id: 'nope' }, 'tunnel_id must be a UUID'],
    [{ port: 0 }, 'port must be an integer from 1 to 65535'],
    [{ port: '443' }, 'port must be an integer from 1 to 65535'],
    [{ target_host: 'a b' }, 'target_host must be a host name'],
    [{ target_host: 'example.com:443' }, 'without a port'],
    [{ segment_size: 10 }, 'segment_size must not be less than 1024'],
  ])('refuses %j with 400 naming the field', async (patch, message) => {
    const { res } = await open(patch);
    expect(res.status).toBe(400);
    expect(res.json().error).toBe('invalid_request');
    expect(res.json().message).toContain(message);
  });

  it('refuses bad tunnel headers with 400 and exact messages', async () => {
    const { id } = await open();
    expect((await receive('x', 0)).json()).toEqual({
      error: 'invalid_request',
      message: 'X-Tunnel-ID must be a UUID.',
    });
    const noId = await server.call('POST', '/proxy/tunnel/send', {}, 'x');
    expect(noId.status).toBe(400);
    expect(noId.json().message).toBe(
      'Missing X-Tunnel-ID header: send the tunnel_id of POST /proxy/tunnel.',
    );
    const badSeq = await receive(id, '-1');
    expect(badSeq.status).toBe(400);
    expect(badSeq.json().message).toBe(
      'X-Sequence must be a non-negative integer, got "-1".',
    );
    const noSeq = await server.call('GET', '/proxy/tunnel/receive', {
      'x-tunnel-id': id,
    });
    expect(noSeq.json().message).toBe(
      'Missing X-Sequence header: send the 0-based number of the segment.',
    );
    const noJson = await server.call('POST', '/proxy/tunnel', {}, '{');
    expect(noJson.status).toBe(400);
    await close(id);
  });

  it('refuses a segment over MAX_CHUNK_SIZE with 413 chunk_too_large', async () => {
    const { id } = await open();
    const res = await send(id, 0, Buffer.alloc(64 * 1024 + 1));
    expect(res.status).toBe(413);
    expect(res.json()).toEqual({
      error: 'chunk_too_large',
      message:
        'Tunnel segment of 65537 bytes is larger than MAX_CHUNK_SIZE (65536 bytes): send smaller segments.',
    });
    await close(id);
  });

  it('opens once for a retried POST and refuses another target under the same id', async () => {
    const id = randomUUID();
    const before = manual.sockets.length;
    const [a, b] = await Promise.all([
      open({ port: manual.port }, id),
      open({ port: manual.port }, id),
    ]);
    expect([a.res.status, b.res.status]).toEqual([201, 201]);
    const again = await open({ port: manual.port }, id);
    expect(again.res.status).toBe(201);
    expect(manual.sockets.length).toBe(before + 1);

    const other = await open({ port: echo.port }, id);
    expect(other.res.status).toBe(409);
    expect(other.res.json()).toEqual({
      error: 'connection_exists',
      message: `Tunnel ${id} already exists for 127.0.0.1:${manual.port}: choose a new UUID for a new tunnel.`,
    });
    await close(id);
  });

  it('writes a re-sent upstream segment once and refuses one out of order', async () => {
    const { id, socket } = await openTo(manual);
    const seen: Buffer[] = [];
    socket.on('data', (d: Buffer) => seen.push(d));
    expect((await send(id, 0, 'one')).status).toBe(200);
    const again = await send(id, 0, 'one');
    expect(again.status).toBe(200);
    expect(again.json()).toMatchObject({ sequence: 0, received_bytes: 3 });
    const ahead = await send(id, 2, 'three');
    expect(ahead.status).toBe(409);
    expect(ahead.json()).toEqual({
      error: 'chunk_conflict',
      message: `Tunnel ${id}: segment 2 came before segment 1: send segments in order, one at a time.`,
    });
    expect((await send(id, 1, 'two')).json()).toMatchObject({
      received_bytes: 6,
    });
    await vi.waitFor(() =>
      expect(Buffer.concat(seen).toString()).toBe('onetwo'),
    );
    await close(id);
  });

  it('answers a re-requested downstream segment again until the next is asked for', async () => {
    const { id, socket } = await openTo(manual);
    socket.write('first');
    const first = await receive(id, 0);
    expect(first.body.toString()).toBe('first');
    socket.write('second');
    await vi.waitFor(() => expect(tunnelOf(id).bufferedBytes).toBe(11));
    // The answer to #0 was lost: asked again, the same bytes come again.
    const repeat = await receive(id, 0);
    expect(repeat.status).toBe(200);
    expect(repeat.body.toString()).toBe('first');
    const skipped = await receive(id, 2);
    expect(skipped.status).toBe(409);
    expect(skipped.json().message).toBe(
      `Tunnel ${id}: asked for segment 2, but the next one is 1 (earlier ones are freed once the next is asked for).`,
    );
    const second = await receive(id, 1);
    expect(second.body.toString()).toBe('second');
    expect(second.headers['x-sequence']).toBe('1');
    // #0 is freed now.
    expect((await receive(id, 0)).status).toBe(409);
    await close(id);
  });

  it('answers 204 after TUNNEL_WAIT_MS without bytes, and returns as soon as bytes arrive', async () => {
    const { id, socket } = await openTo(manual);
    const started = Date.now();
    const empty = await receive(id, 0);
    expect(empty.status).toBe(204);
    expect(empty.headers['x-sequence']).toBe('0');
    expect(Date.now() - started).toBeGreaterThanOrEqual(390);

    const waiting = receive(id, 0);
    await vi.waitFor(() => expect(tunnelOf(id).waiters).toBe(1));
    const written = Date.now();
    socket.write('ping');
    const got = await waiting;
    expect(got.body.toString()).toBe('ping');
    // Well within the 400 ms long-poll bound: woken by the bytes, not by the timer.
    expect(Date.now() - written).toBeLessThan(200);
    await close(id);
  });

  it('half-closes: X-Tunnel-Close ends the target socket, which can still answer and finish', async () => {
    const { id, socket } = await openTo(manual);
    const upstream = readAll(socket);
    await send(id, 0, 'request', true);
    expect((await upstream).toString()).toBe('request');
    // After the FIN nothing more may be sent.
    const late = await send(id, 1, 'late');
    expect(late.status).toBe(409);
    expect(late.json().message).toContain(
      'after the one marked X-Tunnel-Close',
    );
    // The target still answers, then finishes.
    socket.end('response');
    const last = await receive(id, 0);
    expect(last.body.toString()).toBe('response');
    expect(last.headers['x-tunnel-closed']).toBe('true');
    expect((await receive(id, 1)).status).toBe(409);
    await close(id);
  });

  it('tells the client when the target closes first, and still delivers what the client sends after', async () => {
    const { id, socket } = await openTo(manual);
    const upstream = readAll(socket);
    socket.end();
    const closed = await receive(id, 0);
    expect(closed.status).toBe(200);
    expect(closed.body.length).toBe(0);
    expect(closed.headers['x-tunnel-closed']).toBe('true');
    expect((await send(id, 0, 'after', true)).status).toBe(200);
    expect((await upstream).toString()).toBe('after');
    await close(id);
  });

  it('answers 502 once the target resets the connection', async () => {
    const { id, socket } = await openTo(manual);
    socket.resetAndDestroy();
    const res = await receive(id, 0);
    expect(res.status).toBe(502);
    expect(res.json().error).toBe('target_unreachable');
    expect(res.json().message).toContain(
      `Target 127.0.0.1:${manual.port} failed after the tunnel opened:`,
    );
    expect(res.json().message).toContain('ECONNRESET');
    expect((await send(id, 0, 'x')).status).toBe(502);
    await close(id);
  });

  it('pauses the target while the client is behind (backpressure) and delivers everything in order', async () => {
    const segment = 16 * 1024;
    const { id, socket } = await openTo(manual, { segment_size: segment });
    const data = randomBytes(1024 * 1024);
    socket.end(data);
    const tunnel = tunnelOf(id);
    await vi.waitFor(() => expect(tunnel.targetPaused).toBe(true));
    // Pending is bounded by one segment plus one TCP read, not the megabyte.
    expect(tunnel.bufferedBytes).toBeLessThan(segment + 128 * 1024);

    const hash = createHash('sha256');
    let total = 0;
    for (let sequence = 0; ; sequence++) {
      const res = await receive(id, sequence);
      expect(res.status).toBe(200);
      expect(res.body.length).toBeLessThanOrEqual(segment);
      hash.update(res.body);
      total += res.body.length;
      if (res.headers['x-tunnel-closed'] === 'true') break;
    }
    expect(total).toBe(data.length);
    expect(hash.digest('hex')).toBe(
      createHash('sha256').update(data).digest('hex'),
    );
    await close(id);
  });

  it('closes a tunnel idle for TUNNEL_IDLE_TIMEOUT_MS in the connections cleanup job, ending its long-poll with 404', async () => {
    const busy = await openTo(manual);
    const idle = await openTo(manual);
    const targetClosed = peerClosed(idle.socket);
    server.clock.advance(40_000);
    busy.socket.write('still here'); // bytes moved: not idle
    await vi.waitFor(() =>
      expect(tunnelOf(busy.id).bufferedBytes).toBeGreaterThan(0),
    );
    const waiting = receive(idle.id, 0);
    await vi.waitFor(() => expect(tunnelOf(idle.id).waiters).toBe(1));
    server.clock.advance(20_001);

    const job = server.app.get(ConnectionCleanupJob);
    expect(await job.sweep()).toBeGreaterThanOrEqual(1);
    expect((await waiting).status).toBe(404);
    await targetClosed;
    expect(server.app.get(TunnelsService).find(idle.id)).toBeUndefined();
    expect((await receive(busy.id, 0)).body.toString()).toBe('still here');
    await close(busy.id);
  });

  it('destroys the target connection on DELETE, also under a waiting long-poll', async () => {
    const { id, socket } = await openTo(manual);
    const targetClosed = peerClosed(socket);
    const waiting = receive(id, 0);
    await vi.waitFor(() => expect(tunnelOf(id).waiters).toBe(1));
    const tunnel = tunnelOf(id);
    expect((await close(id)).status).toBe(204);
    expect((await waiting).status).toBe(404);
    await targetClosed;
    expect(tunnel.isReleased).toBe(true);
    expect(tunnel.bufferedBytes).toBe(0);
    expect(tunnel.waiters).toBe(0);
  });
});
