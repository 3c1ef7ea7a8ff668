import type { IncomingMessage, ServerResponse } from 'node:http';
import { BaseRpcContext } from '@nestjs/microservices';

/** The message pattern every proxied exchange is dispatched to. */
export const PROXY_HTTP_PATTERN = 'proxy.http';

/** The payload of a `proxy.http` message: what the listener knows of the exchange. */
export interface ProxyExchange {
  /** `Date.now()` when the request head arrived, for the access log. */
  startedAt: number;
  /**
   * The application sent `Expect: 100-continue` and waits for `100 Continue`
   * before sending its body: the handler answers it with
   * `res.writeContinue()` once it is ready to read the body, or sends a
   * final status instead (then the body never comes).
   */
  expectsContinue: boolean;
  /** `http://HOST:PORT` this proxy listens on, for messages that tell the user how to use it. */
  proxyUrl: string;
}

type ProxyContextArgs = [IncomingMessage, ServerResponse];

/**
 * The context of one proxied exchange, as `TcpContext` is for ServerTCP:
 * the raw request and response, for the handler to stream.
 *
 * For `CONNECT` the response is bound to the raw socket by the listener, so
 * every strategy answers through a `ServerResponse` alike.
 */
export class ProxyContext extends BaseRpcContext<ProxyContextArgs> {
  getRequest(): IncomingMessage {
    return this.args[0];
  }

  getResponse(): ServerResponse {
    return this.args[1];
  }
}
