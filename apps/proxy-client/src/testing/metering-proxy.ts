import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One call as the meter saw it. */
export interface MeteredCall {
  method: string;
  /** Path without the stage and query, e.g. `/proxy/chunk`. */
  path: string;
  headers: http.IncomingHttpHeaders;
  bytes: number;
  /** The answer's status, once it came back. */
  status?: number;
  /** 1 for the first answer passed back, 2 for the next… (the order answers came back in). */
  answered?: number;
}

export interface MeteringProxyOptions {
  /** Where calls go on to: the gateway's origin. */
  upstream: string;
  /** Milliseconds to hold a call's answer before passing it back (0: none). */
  delay?: (call: MeteredCall) => number;
}

/**
 * Test support: a real HTTP hop in front of the gateway that passes every
 * call on unchanged (the `Host` header too, so SigV4 signatures still
 * verify), counts the calls in flight per path and the most there ever
 * were, and can hold answers back to make them slow or out of order.
 */
export async function startMeteringProxy(options: MeteringProxyOptions) {
  const calls: MeteredCall[] = [];
  let answers = 0;
  const inFlight = new Map<string, number>();
  const maxInFlight = new Map<string, number>();
  const upstream = new URL(options.upstream);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });

  const server = http.createServer(async (req, res) => {
    const parts: Buffer[] = [];
    for await (const part of req) parts.push(part as Buffer);
    const body = Buffer.concat(parts);
    const path = (req.url ?? '')
      .split('?')[0]
      .replace(/^\/[^/]+(?=\/proxy\/)/, '');
    const call: MeteredCall = {
      method: req.method ?? '',
      path,
      headers: req.headers,
      bytes: body.length,
    };
    calls.push(call);
    const key = `${call.method} ${call.path}`;
    inFlight.set(key, (inFlight.get(key) ?? 0) + 1);
    maxInFlight.set(
      key,
      Math.max(maxInFlight.get(key) ?? 0, inFlight.get(key) ?? 0),
    );
    const done = () => inFlight.set(key, (inFlight.get(key) ?? 1) - 1);
    const forward = http.request({
      host: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers: req.headers,
      agent,
    });
    forward.on('error', () => {
      done();
      res.destroy();
    });
    forward.on('response', async (answer) => {
      const got: Buffer[] = [];
      for await (const part of answer) got.push(part as Buffer);
      call.status = answer.statusCode;
      const wait = options.delay?.(call) ?? 0;
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      done();
      call.answered = ++answers;
      res.writeHead(answer.statusCode ?? 502, answer.rawHeaders);
      res.end(Buffer.concat(got));
    });
    forward.end(body);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    calls,
    /** The most calls of `method path` ever in flight at once. */
    maxInFlight: (key: string) => maxInFlight.get(key) ?? 0,
    /** Calls in flight now, all paths. */
    busy: () => [...inFlight.values()].reduce((a, b) => a + b, 0),
    /** Forgets the calls and maxima seen so far. */
    reset: () => {
      calls.length = 0;
      maxInFlight.clear();
    },
    close: async () => {
      agent.destroy();
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

export type MeteringProxy = Awaited<ReturnType<typeof startMeteringProxy>>;
