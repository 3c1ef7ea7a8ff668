import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Server, type CustomTransportStrategy } from '@nestjs/microservices';
import { Logger } from '@nestjs/common';
import { lastValueFrom } from 'rxjs';
import { ErrorCode, ProtocolError } from '@app/protocol';
import { sendErrorAnswer } from '../common/app-answers.js';
import { redactUrl } from '../relay/pipeline/prepare-proxy-request.js';
import { expectationFailed } from './expectation.js';
import { exposureWarning } from './exposure.js';
import {
  answerOnSocket,
  clientErrorAnswer,
  DEFAULT_MAX_HEADER_COUNT,
  DEFAULT_MAX_HEADER_SIZE,
  headersToKeep,
  tooManyHeaders,
} from './head-limits.js';
import { PROXY_AUTHENTICATE, ProxyAuth } from './proxy-auth.js';
import {
  PROXY_HTTP_PATTERN,
  ProxyContext,
  type ProxyExchange,
} from './proxy-context.js';

export interface ProxyListenerOptions {
  host: string;
  /** 0 = any free port. */
  port: number;
  /** CLIENT_PROXY_AUTH `user:password`; undefined = no proxy authentication. */
  proxyAuth?: string;
  /** Largest request head in bytes (default {@link DEFAULT_MAX_HEADER_SIZE}). */
  maxHeaderSize?: number;
  /** Most header lines in one request (default {@link DEFAULT_MAX_HEADER_COUNT}). */
  maxHeaderCount?: number;
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

/**
 * The HTTP forward-proxy listener, as a Nest microservice transport.
 *
 * Modelled on Nest's `ServerTCP`: `listen(cb)` binds a node:http server and
 * reports a bind error through `cb(err)`; `close()` also destroys the
 * sockets still open, since `http.Server#close` only stops accepting. Each
 * proxied exchange is handed to the `proxy.http` message handler with a
 * {@link ProxyContext} carrying the raw request and response; the handler
 * streams the answer itself.
 *
 * Before that, every request, plain or CONNECT, is admitted here: its head
 * within {@link DEFAULT_MAX_HEADER_SIZE} bytes (else 431, answered from
 * Node's `clientError`) and {@link DEFAULT_MAX_HEADER_COUNT} lines (else
 * 431), and, with CLIENT_PROXY_AUTH, valid Basic credentials (else 407).
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
  private readonly access = new Logger('Access');
  private readonly auth: ProxyAuth | undefined;
  private readonly maxHeaderSize: number;
  private readonly maxHeaderCount: number;

  constructor(private readonly options: ProxyListenerOptions) {
    super();
    this.auth = options.proxyAuth
      ? new ProxyAuth(options.proxyAuth)
      : undefined;
    this.maxHeaderSize = options.maxHeaderSize ?? DEFAULT_MAX_HEADER_SIZE;
    this.maxHeaderCount = options.maxHeaderCount ?? DEFAULT_MAX_HEADER_COUNT;
    // requestTimeout 0: Node's default (300 s) would cut long uploads; the
    // relay bounds every exchange by its own progress timeout instead.
    // requireHostHeader false: an absolute-form request names its target in
    // the URI, so a missing Host is no reason to refuse it (some clients
    // omit it when they send raw header lists).
    this.server = http.createServer({
      requestTimeout: 0,
      requireHostHeader: false,
      maxHeaderSize: this.maxHeaderSize,
    });
    this.server.maxHeadersCount = headersToKeep(this.maxHeaderCount);
    this.server.on('connection', (socket: Socket) => this.track(socket));
    this.server.on('request', (req, res) => this.onRequest(req, res, false));
    // With a 'checkContinue' listener Node leaves `100 Continue` to us: the
    // handler sends it only once it is ready to read the body, and answers
    // 413 without it when the declared size is too large.
    this.server.on('checkContinue', (req, res) =>
      this.onRequest(req, res, true),
    );
    // Any other Expect: refused in JSON rather than Node's bare 417.
    this.server.on('checkExpectation', (req, res) =>
      this.onRequest(req, res, false, expectationFailed(req)),
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
      const warning = exposureWarning(host, port, this.auth !== undefined);
      if (warning) this.logger.warn(warning);
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
    refusal?: ProtocolError,
  ): void {
    const socket = req.socket;
    this.inFlight.set(socket, res);
    res.once('close', () => {
      if (this.inFlight.get(socket) === res) this.inFlight.delete(socket);
    });
    void this.dispatch(req, res, expectsContinue, refusal);
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
    refusedAlready?: ProtocolError,
  ): Promise<void> {
    const exchange: ProxyExchange = {
      startedAt: Date.now(),
      expectsContinue,
      proxyUrl: this.bound?.url ?? `http://${this.options.host}`,
    };
    const refusal = refusedAlready ?? this.admit(req);
    if (refusal) {
      await this.refuse(exchange, req, res, refusal);
      return;
    }
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
        `Proxy exchange ${req.method} ${redactUrl(req.url)} failed unexpectedly`,
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

  /**
   * The checks every request passes before it is relayed: the number of
   * header lines, then the proxy credentials. Returns the refusal, if any.
   */
  private admit(req: IncomingMessage): ProtocolError | undefined {
    return tooManyHeaders(req, this.maxHeaderCount) ?? this.auth?.check(req);
  }

  /**
   * Answers a request refused before relaying (407, 431) and logs it like
   * every exchange. A 407 carries the Basic challenge; the connection stays
   * open, so the application can send the request again with credentials.
   */
  private async refuse(
    exchange: ProxyExchange,
    req: IncomingMessage,
    res: ServerResponse,
    refusal: ProtocolError,
  ): Promise<void> {
    if (refusal.code === ErrorCode.ProxyAuthRequired) {
      res.setHeader('proxy-authenticate', PROXY_AUTHENTICATE);
    }
    await sendErrorAnswer(req, res, refusal);
    this.access.log(
      `${req.method} ${redactUrl(req.url)} ${refusal.status} ${refusal.code} ${Date.now() - exchange.startedAt}ms`,
    );
  }

  /**
   * A request head Node could not read (malformed, over maxHeaderSize, too
   * slow): answered in JSON like every other error, then the socket is
   * closed; unless a response is already on the wire, which must not be
   * corrupted: then the socket is destroyed.
   */
  private onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    const current = this.inFlight.get(socket);
    if (err.code === 'ECONNRESET' || !socket.writable || current?.headersSent) {
      socket.destroy();
      return;
    }
    answerOnSocket(
      socket,
      clientErrorAnswer(err.code, {
        maxHeaderSize: this.maxHeaderSize,
        proxyUrl: this.bound?.url ?? 'http://HOST:PORT',
      }),
    );
  }
}
