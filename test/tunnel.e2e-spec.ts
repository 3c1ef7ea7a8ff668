import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { ProxyAgent, request } from 'undici';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { startSystem } from './support/chain.js';
import { closedPort, viaCurl } from './support/clients.js';
import {
  deterministicBytes,
  makeCertificate,
  sha256Of,
} from './support/target.js';

const MB = 1000 * 1000;

/**
 * The HTTPS target: `GET /bytes?size=N&seed=S` streams N deterministic
 * bytes, `POST /sha` answers the SHA-256 and length of what it received,
 * `GET /small` a short text; `/ws` is a WebSocket echo.
 */
async function startHttpsTarget(key: Buffer, cert: Buffer) {
  const server = https.createServer({ key, cert }, async (req, res) => {
    const url = new URL(req.url ?? '/', 'https://localhost');
    if (url.pathname === '/bytes') {
      const size = Number(url.searchParams.get('size'));
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-length': size,
      });
      for (const block of deterministicBytes(
        size,
        url.searchParams.get('seed') ?? undefined,
      )) {
        if (!res.write(block)) await once(res, 'drain');
      }
      res.end();
      return;
    }
    if (url.pathname === '/sha' && req.method === 'POST') {
      const hash = createHash('sha256');
      let bytes = 0;
      for await (const part of req) {
        hash.update(part as Buffer);
        bytes += (part as Buffer).length;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ bytes, sha256: hash.digest('hex') }));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('hello over TLS');
  });
  const wss = new WebSocketServer({ server, path: '/ws' });
  wss.on('connection', (socket) =>
    socket.on('message', (data: RawData, binary: boolean) =>
      socket.send(data, { binary }),
    ),
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const client of wss.clients) client.terminate();
      wss.close();
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

/** A plain TCP target whose connections each test drives itself. */
async function startTcpTarget() {
  const sockets: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => undefined);
    sockets.push(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    next: async (before: number): Promise<net.Socket> => {
      await vi.waitFor(() => expect(sockets.length).toBeGreaterThan(before));
      return sockets[before];
    },
    get count() {
      return sockets.length;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

interface ConnectAnswer {
  status: number;
  /** The tunnel, when the status is 200. */
  socket: net.Socket;
  /** The body of a refusal (JSON). */
  body: string;
}

/** `CONNECT authority` through the proxy with node:http, as an application does it by hand. */
function connectThrough(
  proxyUrl: string,
  authority: string,
): Promise<ConnectAnswer> {
  const proxy = new URL(proxyUrl);
  return new Promise<ConnectAnswer>((resolve, reject) => {
    const req = http.request({
      host: proxy.hostname,
      port: proxy.port,
      method: 'CONNECT',
      path: authority,
      headers: { host: authority },
      agent: false,
    });
    req.once('error', reject);
    req.once(
      'connect',
      (res: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
        const status = res.statusCode ?? 0;
        if (status === 200) {
          // A tunnel is a TCP connection: its half-close must work both ways.
          socket.allowHalfOpen = true;
          if (head.length > 0) socket.unshift(head);
          resolve({ status, socket, body: '' });
          return;
        }
        let body = head.toString();
        socket.on('data', (d: Buffer) => (body += d.toString()));
        socket.once('close', () => resolve({ status, socket, body }));
      },
    );
    req.end();
  });
}

/** Everything until the peer's FIN, leaving the socket open for half-close. */
function readUntilEnd(socket: net.Socket): Promise<string> {
  let text = '';
  socket.on('data', (d: Buffer) => (text += d.toString()));
  return once(socket, 'end').then(() => text);
}

describe('CONNECT tunnels through the whole chain (gateway limit 2 MiB, TLS end to end)', () => {
  let dir: string;
  let certificate: Awaited<ReturnType<typeof makeCertificate>>;
  let target: Awaited<ReturnType<typeof startHttpsTarget>>;
  let tcp: Awaited<ReturnType<typeof startTcpTarget>>;
  let refusedPort: number;
  let system: Awaited<ReturnType<typeof startSystem>>;
  let proxyUrl: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'chunkgate-tunnel-'));
    certificate = await makeCertificate(dir);
    // The targets first: the server may tunnel only to their ports.
    target = await startHttpsTarget(certificate.key, certificate.cert);
    tcp = await startTcpTarget();
    refusedPort = await closedPort();
    system = await startSystem({
      server: {
        CONNECT_ALLOWED_PORTS: `${target.port},${tcp.port},${refusedPort}`,
      },
    });
    proxyUrl = system.chain.proxyUrl;
  });
  afterAll(async () => {
    await system?.stop();
    await target?.close();
    await tcp?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const httpsUrl = (path: string) => `https://127.0.0.1:${target.port}${path}`;

  it('carries a 5 MB GET to curl -x over https, verified by SHA-256', async () => {
    const res = await viaCurl(
      proxyUrl,
      httpsUrl(`/bytes?size=${5 * MB}&seed=get`),
      ['--cacert', certificate.certFile],
    );
    expect(res.status).toBe(200);
    expect(res.body.length).toBe(5 * MB);
    expect(res.sha256).toBe(sha256Of(deterministicBytes(5 * MB, 'get')));
    // What curl printed of the tunnel: the 200 of the CONNECT, then the target's answer.
    expect(res.head).toMatch(/^HTTP\/1\.1 200 Connection Established\r\n/);
  });

  it('carries a 5 MB POST from curl over https, verified by SHA-256', async () => {
    const file = join(dir, 'five-mb');
    await writeFile(
      file,
      Buffer.concat([...deterministicBytes(5 * MB, 'post')]),
    );
    const res = await viaCurl(proxyUrl, httpsUrl('/sha'), [
      '--cacert',
      certificate.certFile,
      '--data-binary',
      `@${file}`,
      '-H',
      'Content-Type: application/octet-stream',
    ]);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString())).toEqual({
      bytes: 5 * MB,
      sha256: sha256Of(deterministicBytes(5 * MB, 'post')),
    });
  });

  it('serves undici ProxyAgent (CONNECT by default for https)', async () => {
    const agent = new ProxyAgent({
      uri: proxyUrl,
      requestTls: { ca: certificate.cert },
    });
    try {
      for (let i = 0; i < 3; i++) {
        const res = await request(httpsUrl('/small'), { dispatcher: agent });
        expect(res.statusCode).toBe(200);
        expect(await res.body.text()).toBe('hello over TLS');
      }
    } finally {
      await agent.close();
    }
  });

  it('carries 20 tunnels at once', async () => {
    const size = 300 * 1000;
    const results = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const agent = new ProxyAgent({
          uri: proxyUrl,
          requestTls: { ca: certificate.cert },
        });
        try {
          const res = await request(
            httpsUrl(`/bytes?size=${size}&seed=t${i}`),
            {
              dispatcher: agent,
            },
          );
          const hash = createHash('sha256');
          for await (const part of res.body) hash.update(part as Buffer);
          return { i, status: res.statusCode, sha256: hash.digest('hex') };
        } finally {
          await agent.close();
        }
      }),
    );
    for (const { i, status, sha256 } of results) {
      expect(status).toBe(200);
      expect(sha256).toBe(sha256Of(deterministicBytes(size, `t${i}`)));
    }
  });

  it('carries a WebSocket (wss://) echo, interactively', async () => {
    const tunnel = await connectThrough(proxyUrl, `127.0.0.1:${target.port}`);
    expect(tunnel.status).toBe(200);
    const ws = new WebSocket(`wss://127.0.0.1:${target.port}/ws`, {
      createConnection: () =>
        tls.connect({
          socket: tunnel.socket,
          host: '127.0.0.1',
          ca: certificate.cert,
        }),
    });
    await once(ws, 'open');
    const messages: string[] = [];
    const next = () =>
      new Promise<string>((resolve) =>
        ws.once('message', (data: RawData) => resolve(data.toString())),
      );
    const rtts: number[] = [];
    for (let i = 0; i < 20; i++) {
      const started = performance.now();
      const echoed = next();
      ws.send(`message ${i}`);
      messages.push(await echoed);
      rtts.push(performance.now() - started);
    }
    expect(messages).toEqual(
      Array.from({ length: 20 }, (_, i) => `message ${i}`),
    );
    // A warm tunnel answers a small message within a few gateway round trips
    // (local chain: milliseconds), never after a polling interval.
    rtts.sort((a, b) => a - b);
    const median = rtts[10];
    console.log(
      `wss echo through the warm tunnel: median ${median.toFixed(1)} ms, max ${rtts[19].toFixed(1)} ms`,
    );
    expect(median).toBeLessThan(250);
    ws.close();
    await once(ws, 'close');
  });

  it('lets a target that closes first be seen closing promptly, and still takes what the application sends after', async () => {
    const before = tcp.count;
    const tunnel = await connectThrough(proxyUrl, `127.0.0.1:${tcp.port}`);
    expect(tunnel.status).toBe(200);
    const far = await tcp.next(before);
    const closed = once(tunnel.socket, 'close');
    const received = readUntilEnd(tunnel.socket);
    const started = performance.now();
    far.end('bye');
    expect(await received).toBe('bye');
    // Well within one long-poll bound (TUNNEL_WAIT_MS, 20 s): the FIN came with the data.
    expect(performance.now() - started).toBeLessThan(2000);

    const upstream = readUntilEnd(far);
    tunnel.socket.end('after the close');
    expect(await upstream).toBe('after the close');
    await closed;
  });

  it('lets an application that closes first be seen closing promptly, and still receives the answer', async () => {
    const before = tcp.count;
    const tunnel = await connectThrough(proxyUrl, `127.0.0.1:${tcp.port}`);
    expect(tunnel.status).toBe(200);
    const far = await tcp.next(before);
    const closed = once(tunnel.socket, 'close');
    const upstream = readUntilEnd(far);
    const started = performance.now();
    tunnel.socket.end('request');
    expect(await upstream).toBe('request');
    expect(performance.now() - started).toBeLessThan(2000);

    const downstream = readUntilEnd(tunnel.socket);
    far.end('answer after the FIN');
    expect(await downstream).toBe('answer after the FIN');
    await closed;
  });

  it('delivers bytes an application sends right behind its CONNECT, before the 200', async () => {
    const before = tcp.count;
    const app = net.connect(system.chain.client.port, '127.0.0.1');
    await once(app, 'connect');
    const authority = `127.0.0.1:${tcp.port}`;
    app.write(
      `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\nearly bytes`,
    );
    const far = await tcp.next(before);
    let upstream = '';
    far.on('data', (d: Buffer) => (upstream += d.toString()));
    await vi.waitFor(() => expect(upstream).toBe('early bytes'));
    // A reset, not a FIN: a FIN would leave the tunnel half-open, as TCP says.
    app.resetAndDestroy();
  });

  it('closes the target connection when the application resets its socket', async () => {
    const before = tcp.count;
    const tunnel = await connectThrough(proxyUrl, `127.0.0.1:${tcp.port}`);
    const far = await tcp.next(before);
    far.resume();
    const farClosed = Promise.race([once(far, 'end'), once(far, 'close')]);
    tunnel.socket.resetAndDestroy();
    await farClosed;
  });

  it('answers 502 with the cause for a refused port, instead of a dead tunnel', async () => {
    const answer = await connectThrough(proxyUrl, `127.0.0.1:${refusedPort}`);
    expect(answer.status).toBe(502);
    const body = JSON.parse(answer.body) as { error: string; message: string };
    expect(body.error).toBe('target_unreachable');
    expect(body.message).toContain(`127.0.0.1:${refusedPort}`);
    expect(body.message).toContain('ECONNREFUSED');
  });

  it('answers 403 with the reason for a port the server does not allow', async () => {
    const answer = await connectThrough(proxyUrl, '127.0.0.1:22');
    expect(answer.status).toBe(403);
    expect(JSON.parse(answer.body)).toEqual({
      error: 'connect_port_forbidden',
      message: `CONNECT to 127.0.0.1:22 refused: port 22 is not allowed; this server tunnels only to ports ${target.port}, ${tcp.port}, ${refusedPort} (CONNECT_ALLOWED_PORTS).`,
    });
  });

  it('answers 400 for a CONNECT without a port', async () => {
    const answer = await connectThrough(proxyUrl, 'example.com');
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body)).toEqual({
      error: 'bad_proxy_request',
      message:
        'CONNECT needs a target of the form host:port (such as example.com:443), got "example.com".',
    });
  });

  it('frees every tunnel on the server once its applications are done', async () => {
    const output = () => system.chain.server.output();
    await vi.waitFor(() => {
      const opened = output().match(/tunnel \S+ to \S+ opened/g) ?? [];
      const freed =
        output().match(/tunnel \S+ to \S+ closed by the client/g) ?? [];
      expect(opened.length).toBeGreaterThanOrEqual(20);
      expect(freed.length).toBe(opened.length);
    }, 10_000);
  });
});
