import { Readable } from 'node:stream';
import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationShutdown,
} from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { Agent } from 'undici';
import {
  ErrorCode,
  ProtocolError,
  pairsFromRawHeaders,
  stripHopByHop,
} from '@app/protocol';
import { serverConfig } from '../config/server.config.js';
import type { Connection } from '../connections/connection.js';
import { targetFailure } from './target-errors.js';
import { TargetGuard } from './target-guard.js';
import { flatHeaders, sendsBody } from './target-request.js';

/**
 * Sends a connection's assembled request to the target and feeds the answer
 * into the connection's response chunks.
 *
 * ```
 * request chunks ──(in index order, from memory and spool file,
 *                   pulled as undici writes: backpressure)──▶ undici ──▶ target
 * target ──▶ head ──▶ response.start()
 *        ──▶ body ──▶ response.push() ──(await room: backpressure)──▶ …
 *        ──▶ end ──▶ response.end()      error ──▶ response.fail(502/504)
 * ```
 *
 * One keep-alive pool (undici Agent) serves every target; it connects only
 * where the {@link TargetGuard} allows (a refused target fails the response
 * with 403 `target_forbidden`). TARGET_TIMEOUT_MS
 * bounds connecting, waiting for the head and every pause in the body; a
 * pause caused by our own backpressure does not count (undici stops its body
 * timer while paused).
 */
@Injectable()
export class TargetService implements OnApplicationShutdown {
  private readonly logger = new Logger('Target');
  private readonly agent: Agent;

  constructor(
    @Inject(serverConfig.KEY)
    private readonly config: ConfigType<typeof serverConfig>,
    guard: TargetGuard,
  ) {
    this.agent = new Agent({
      headersTimeout: config.targetTimeoutMs,
      bodyTimeout: config.targetTimeoutMs,
      connect: guard.connector({ timeout: config.targetTimeoutMs }),
    });
  }

  /**
   * Runs the target exchange of a complete connection to its end. Never
   * rejects: a failure is recorded in the connection's response, where
   * `GET /proxy/response` finds it.
   */
  async forward(connection: Connection): Promise<void> {
    const { target, request, response } = connection;
    const started = Date.now();
    const bodyBytes = request.receivedBytes;
    try {
      const res = await this.agent.request({
        origin: target.origin,
        path: target.path,
        method: target.method,
        headers: flatHeaders(target, bodyBytes),
        body: sendsBody(target.method, bodyBytes)
          ? Readable.from(request.drain(), { objectMode: false })
          : undefined,
        signal: connection.signal,
        responseHeaders: 'raw',
      });
      // With responseHeaders 'raw', undici hands over the header list as
      // received ([name, value, …]): repeated names, order and case survive.
      const raw = res.headers as unknown as string[];
      response.start({
        status: res.statusCode,
        reason: res.statusText ?? '',
        headers: stripHopByHop(pairsFromRawHeaders(raw)),
      });
      for await (const data of res.body) {
        response.push(data as Buffer);
        if (response.full) await response.waitForRoom();
        if (connection.isReleased) {
          res.body.destroy();
          return;
        }
      }
      response.end();
      // At debug: a small request is one gateway call, and no call may cost
      // a log line by default (stdout to a pipe is a synchronous write).
      this.logger.debug(
        `${target.method} ${target.display} -> ${res.statusCode}, ${bodyBytes} bytes sent, ${response.receivedBytes} bytes received in ${Date.now() - started} ms`,
      );
    } catch (error) {
      if (connection.isReleased) return;
      if (error instanceof ProtocolError) {
        // Ours, not the target's: the guard refused the target's address
        // (403), or the spool file could not be read back (507).
        this.logger.warn(`${target.method} request: ${error.message}`);
        response.fail(error);
        return;
      }
      const failure = targetFailure(
        error,
        target.display,
        this.config.targetTimeoutMs,
        response.headReceived ? response.receivedBytes : undefined,
      );
      if (failure instanceof ProtocolError) {
        this.logger.warn(`${target.method} request: ${failure.message}`);
        response.fail(failure);
      } else {
        this.logger.error(
          `${target.method} ${target.display} failed unexpectedly: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
        );
        response.fail(
          new ProtocolError(
            500,
            ErrorCode.Internal,
            `proxy-server failed while forwarding to ${target.display} (a bug); the details are in its log.`,
          ),
        );
      }
    } finally {
      request.free();
    }
  }

  async onApplicationShutdown(): Promise<void> {
    await this.agent.destroy();
  }
}
