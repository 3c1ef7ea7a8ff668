import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Server, type CustomTransportStrategy } from '@nestjs/microservices';
import { Logger } from '@nestjs/common';
import { lastValueFrom } from 'rxjs';
import { ErrorCode, ProtocolError } from '@app/protocol';
import { sendErrorAnswer } from '../common/app-answers.js';
import {
  PROXY_HTTP_PATTERN,
  ProxyContext,
  type ProxyExchange,
} from './proxy-context.js';

export interface ProxyListenerOptions {
  host: string;
  /** 0 = any free port. */
  port: number;
}

/** Where the listener is bound, known once it listens. */
export interface ListenAddress {
  host: string;
  port: number;
  /** `http://HOST:PORT`, IPv6 hosts in brackets: what applications use as their proxy. */
  url: string;
}

/** Events of the underlying node:http server that `on()` exposes. */
type ProxyListenerEvents = {
  listening: () => void;
  close: () => void;
  error: (err: Error) => void;
  connection: (socket: Socket) => void;
};

/** Status of the error Node reports for a request it could not parse. */
function clientErrorStatus(code: string | undefined): number {
  if (code === 'HPE_HEADER_OVERFLOW') return 431;
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return 408;
  return 400;
}

/**
 * The HTTP forward-proxy listener, as a Nest microservice transport.
 *
 * Modelled on Nest's `ServerTCP`: `listen(cb)` binds a node:http server and
 * reports a bind error through `cb(err)`; `close()` also destroys the
 * sockets still open, since `http.Server#close` only stops accepting. Each
 * proxied exchange is handed to the `proxy.http` message handler with a
 * {@link ProxyContext} carrying the raw request and response; the handler
 * streams the answer itself.
 */
export class ProxyListener
  extends Server<ProxyListenerEvents>
  implements CustomTransportStrategy
{
  readonly transportId = Symbol.for('chunkgate.proxy-listener');
  protected override readonly logger = new Logger(ProxyListener.name);

  private readonly server: http.Server;
  private readonly openSockets = new Set<Socket | Duplex>();
  /** The response in progress on a socket, so a parse error never writes into it. */
  private readonly inFlight = new WeakMap<Duplex, ServerResponse>();
  private bound: ListenAddress | undefined;

  constructor(private readonly options: ProxyListenerOptions) {
    super();
    // requestTimeout 0: Node's default (300 s) would cut long uploads; the
    // relay bounds every exchange by its own progress timeout instead.
    // requireHostHeader false: an absolute-form request names its target in
    // the URI, so a missing Host is no reason to refuse it (some clients
    // omit it when they send raw header lists).
    this.server = http.createServer({
      requestTimeout: 0,
      requireHostHeader: false,
    });
    this.server.on('connection', (socket: Socket) => this.track(socket));
    this.server.on('request', (req, res) => this.onRequest(req, res, false));
    // With a 'checkContinue' listener Node leaves `100 Continue` to us: the
    // handler sends it only once it is ready to read the body, and answers
    // 413 without it when the declared size is too large.
    this.server.on('checkContinue', (req, res) =>
      this.onRequest(req, res, true),
    );
    this.server.on(
      'connect',
      (req: IncomingMessage, socket: Duplex, head: Buffer) => {
        // Bytes the application sent right behind the CONNECT head belong
        // to the tunnel: put back, they are read first.
        if (head.length > 0) socket.unshift(head);
        this.onConnect(req, socket);
      },
    );
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket) =>
      this.onClientError(err, socket),
    );
  }

  listen(callback: (err?: unknown, ...rest: unknown[]) => void): void {
    const onError = (err: Error) => callback(err);
    this.server.once('error', onError);
    this.server.listen(this.options.port, this.options.host, () => {
      this.server.off('error', onError);
      this.server.on('error', (err) => this.logger.error(err));
      const { port } = this.server.address() as AddressInfo;
      const host = this.options.host;
      this.bound = {
        host,
        port,
        url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
      };
      callback();
    });
  }

  /** Stops accepting, destroys every open socket, resolves once closed. */
  async close(): Promise<void> {
    const closed = this.server.listening
      ? new Promise<void>((resolve) => this.server.close(() => resolve()))
      : Promise.resolve();
    for (const socket of this.openSockets) socket.destroy();
    this.openSockets.clear();
    await closed;
  }

  /** The bound address; throws before `listen` succeeded. */
  address(): ListenAddress {
    if (!this.bound) {
      throw new Error(
        'ProxyListener is not listening yet: call listen() (app.listen()) first.',
      );
    }
    return this.bound;
  }

  on<K extends keyof ProxyListenerEvents>(
    event: K,
    callback: ProxyListenerEvents[K],
  ): void {
    this.server.on(event, callback as (...args: unknown[]) => void);
  }

  unwrap<T>(): T {
    return this.server as T;
  }

  private track(socket: Socket | Duplex): void {
    this.openSockets.add(socket);
    socket.once('close', () => this.openSockets.delete(socket));
  }

  private onRequest(
    req: IncomingMessage,
    res: ServerResponse,
    expectsContinue: boolean,
  ): void {
    const socket = req.socket;
    this.inFlight.set(socket, res);
    res.once('close', () => {
      if (this.inFlight.get(socket) === res) this.inFlight.delete(socket);
    });
    void this.dispatch(req, res, expectsContinue);
  }

  /**
   * CONNECT leaves Node's request/response cycle: Node hands over the raw
   * socket. A `ServerResponse` bound to it lets the CONNECT strategy answer
   * like any other; the socket is closed once that answer is out.
   */
  private onConnect(req: IncomingMessage, socket: Duplex): void {
    const res = new http.ServerResponse(req);
    res.assignSocket(socket as Socket);
    res.shouldKeepAlive = false;
    res.once('finish', () => {
      res.detachSocket(socket as Socket);
      socket.end();
    });
    socket.once('error', () => socket.destroy());
    void this.dispatch(req, res, false);
  }

  private async dispatch(
    req: IncomingMessage,
    res: ServerResponse,
    expectsContinue: boolean,
  ): Promise<void> {
    const exchange: ProxyExchange = {
      startedAt: Date.now(),
      expectsContinue,
      proxyUrl: this.bound?.url ?? `http://${this.options.host}`,
    };
    const handler = this.getHandlerByPattern(PROXY_HTTP_PATTERN);
    try {
      if (!handler) {
        throw new Error(`No handler for "${PROXY_HTTP_PATTERN}" is registered`);
      }
      const result = await handler(exchange, new ProxyContext([req, res]));
      await lastValueFrom(this.transformToObservable(result), {
        defaultValue: undefined,
      });
    } catch (err) {
      // Expected failures are answered by the handler; reaching here is a bug.
      this.logger.error(
        `Proxy exchange ${req.method} ${req.url} failed unexpectedly`,
        err instanceof Error ? err.stack : JSON.stringify(err),
      );
      await sendErrorAnswer(
        req,
        res,
        new ProtocolError(
          500,
          ErrorCode.Internal,
          'proxy-client failed unexpectedly (a bug, see its log); the request may be retried.',
        ),
      );
    }
  }

  /** A request Node could not parse: answer in JSON like every other error, unless a response is already on the wire. */
  private onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    const current = this.inFlight.get(socket);
    if (err.code === 'ECONNRESET' || !socket.writable || current?.headersSent) {
      socket.destroy();
      return;
    }
    const status = clientErrorStatus(err.code);
    const body = JSON.stringify({
      error: ErrorCode.BadProxyRequest,
      message: `Malformed HTTP request (${err.code ?? err.message}): send an HTTP/1.1 proxy request such as curl -x ${this.bound?.url ?? 'http://HOST:PORT'} http://target/...`,
    });
    socket.end(
      `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\n` +
        'Content-Type: application/json; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        'Connection: close\r\n\r\n' +
        body,
    );
  }
}
