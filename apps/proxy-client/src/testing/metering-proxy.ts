import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One call as the meter saw it. */
export interface MeteredCall {
  /** 1 for the first call the meter received, 2 for the next… */
  n: number;
  method: string;
  /** Path without the stage and query, e.g. `/proxy/chunk`. */
  path: string;
  headers: http.IncomingHttpHeaders;
  /** The call's body as sent (the connection JSON, a chunk's bytes). */
  body: Buffer;
  bytes: number;
  /** The answer's status, once it came back from upstream. */
  status?: number;
  /** 1 for the first answer passed back, 2 for the next… (the order answers came back in). */
  answered?: number;
  /** The upstream answered (`status`), but the meter dropped the connection instead of passing it back. */
  lost?: boolean;
  /** The upstream dropped the connection without an answer. */
  dropped?: boolean;
}

export interface MeteringProxyOptions {
  /** Where calls go on to: the gateway's origin. */
  upstream: string;
  /** Milliseconds to hold a call's answer before passing it back (0: none). */
  delay?: (call: MeteredCall) => number;
  /**
   * The origin to send this call to instead of `upstream` (another real
   * gateway, e.g. one started with GATEWAY_FAULT_RATE=1 to answer it 503).
   */
  route?: (call: MeteredCall) => string | undefined;
  /**
   * Lose this call's answer: the call goes on and is handled in full, its
   * answer is read, then the connection to the caller is dropped, as when the
   * network loses an answer on its way back (the gateway's `reset-after`
   * fault, aimed at one call).
   */
  loseAnswer?: (call: MeteredCall) => boolean;
}

/**
 * Test support: a real HTTP hop in front of the gateway that passes every
 * call on unchanged (the `Host` header too, so SigV4 signatures still
 * verify), records each call with its body and answer status, counts the
 * calls in flight per path and the most there ever were, and can hold
 * answers back (slow or out of order), send chosen calls to another real
 * gateway, or lose a chosen call's answer. It never makes up an answer:
 * every status a caller gets came from a real gateway.
 */
export async function startMeteringProxy(options: MeteringProxyOptions) {
  const calls: MeteredCall[] = [];
  let received = 0;
  let answers = 0;
  const inFlight = new Map<string, number>();
  const maxInFlight = new Map<string, number>();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });

  const server = http.createServer(async (req, res) => {
    const parts: Buffer[] = [];
    for await (const part of req) parts.push(part as Buffer);
    const body = Buffer.concat(parts);
    const path = (req.url ?? '')
      .split('?')[0]
      .replace(/^\/[^/]+(?=\/proxy\/)/, '');
    const call: MeteredCall = {
      n: ++received,
      method: req.method ?? '',
      path,
      headers: req.headers,
      body,
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
    const upstream = new URL(options.route?.(call) ?? options.upstream);
    const lose = options.loseAnswer?.(call) ?? false;
    const forward = http.request({
      host: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers: req.headers,
      agent,
    });
    forward.on('error', () => {
      call.dropped = true;
      done();
      res.destroy();
    });
    forward.on('response', async (answer) => {
      const got: Buffer[] = [];
      try {
        for await (const part of answer) got.push(part as Buffer);
      } catch {
        // The upstream broke off mid-answer: so does the meter.
        call.dropped = true;
        done();
        res.destroy();
        return;
      }
      call.status = answer.statusCode;
      const wait = options.delay?.(call) ?? 0;
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      done();
      if (lose) {
        call.lost = true;
        res.destroy();
        return;
      }
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
