import { randomUUID } from 'node:crypto';
import type { LoggerService } from '@nestjs/common';
import {
  ErrorCode,
  ProtocolError,
  recordFromPairs,
  type CreateConnectionDto,
} from '@app/protocol';
import {
  cutOff,
  sendContinue,
  sendErrorAnswer,
} from '../../common/app-answers.js';
import {
  PENDING,
  type ProxyServerApi,
} from '../../gateway/proxy-server-api.js';
import { readChunks, type BodyChunk } from '../chunk-reader.js';
import {
  ApplicationGoneError,
  newStats,
  type ExchangeIo,
  type ExchangeStats,
} from '../exchange.js';
import { ExchangeDeadline, untilAborted } from '../exchange-deadline.js';
import { writeBody, writeTargetHead } from '../response-writer.js';
import type { HttpProxyRequest } from './prepare-proxy-request.js';

export interface ForwardHttpDeps {
  api: ProxyServerApi;
  /** CHUNK_SIZE: upload chunks and the response chunks asked for. */
  chunkSize: number;
  /** MAX_BODY_SIZE, enforced while a chunked body streams in. */
  maxBodySize: number;
  /** REQUEST_TIMEOUT_MS: longest time without progress. */
  requestTimeoutMs: number;
  logger: LoggerService;
  /** Aborts the exchange with its reason (the app is shutting down). */
  shutdown?: AbortSignal;
  newConnectionId?: () => string;
}

/** State shared by the steps of one exchange. */
interface Relay {
  id: string;
  request: HttpProxyRequest;
  io: ExchangeIo;
  deps: ForwardHttpDeps;
  deadline: ExchangeDeadline;
  stats: ExchangeStats;
}

/**
 * Strategy for plain HTTP: relays one request and its response through the
 * gateway, one chunk at a time in each direction.
 *
 * ```
 * app                  proxy-client                        gateway → proxy-server → target
 *  │ head ───────────▶  │ POST /proxy/connection (JSON head) ─▶│
 *  │ ◀─ 100 Continue ── │ (if the app sent Expect: 100-continue)
 *  │ body ───────────▶  │ POST /proxy/chunk × N, CHUNK_SIZE ──▶│ final: request sent to target
 *  │ ◀── head, body ─── │ ◀── GET /proxy/response × M ─────────│ (202: ask again)
 *  │                    │ DELETE /proxy/connection (always, best effort)
 * ```
 *
 * Failures before the head reached the application become a JSON error
 * answer; after it, the application's connection is cut, never ended as if
 * complete. If the application goes away, everything stops and the server's
 * connection is released.
 */
export async function forwardHttp(
  request: HttpProxyRequest,
  io: ExchangeIo,
  deps: ForwardHttpDeps,
): Promise<ExchangeStats> {
  const relay: Relay = {
    id: (deps.newConnectionId ?? randomUUID)(),
    request,
    io,
    deps,
    deadline: new ExchangeDeadline(deps.requestTimeoutMs),
    stats: newStats(),
  };
  const { res } = io;
  const onClose = () => {
    if (!res.writableFinished) relay.deadline.abort(new ApplicationGoneError());
  };
  res.once('close', onClose);
  const onShutdown = () => relay.deadline.abort(deps.shutdown?.reason as Error);
  deps.shutdown?.addEventListener('abort', onShutdown, { once: true });
  let opened = false;
  try {
    await openConnection(relay);
    opened = true;
    await uploadBody(relay);
    await downloadResponse(relay);
    relay.stats.status = res.statusCode;
  } catch (error) {
    const signal = relay.deadline.signal;
    await answerFailure(relay, signal.aborted ? signal.reason : error);
  } finally {
    res.off('close', onClose);
    deps.shutdown?.removeEventListener('abort', onShutdown);
    relay.deadline.dispose();
    // Aborted while opening, the server may have created it all the same.
    if (opened || relay.deadline.signal.aborted) await releaseConnection(relay);
  }
  return relay.stats;
}

/**
 * Step: open the connection on the server with the request head.
 *
 * ```
 * HttpProxyRequest ─▶ CreateConnectionDto ─▶ POST /proxy/connection ─▶ 201
 * ```
 */
async function openConnection({
  id,
  request,
  deps,
  deadline,
}: Relay): Promise<void> {
  const connection: CreateConnectionDto = {
    connection_id: id,
    target_host: request.targetHost,
    port: request.port,
    scheme: request.scheme,
    method: request.method,
    path: request.path,
    headers: recordFromPairs(request.headers),
    body_size: request.bodySize,
    response_chunk_size: deps.chunkSize,
    download_window: 1,
  };
  await deps.api.openConnection(connection, deadline.signal);
  deadline.progress();
}

/**
 * Step: stream the application's body up, one chunk in flight at a time.
 *
 * ```
 * (100 Continue) ─▶ read ≤ CHUNK_SIZE ─▶ POST /proxy/chunk #i ─▶ read on … ─▶ final chunk
 *                   (the app's stream is paused while a chunk is in flight)
 * ```
 */
async function uploadBody({
  id,
  request,
  io,
  deps,
  deadline,
  stats,
}: Relay): Promise<void> {
  if (io.expectsContinue) sendContinue(io.res);
  const chunks = readChunks(io.req, {
    chunkSize: deps.chunkSize,
    maxBytes: deps.maxBodySize,
    tooLarge: (max) =>
      new ProtocolError(
        413,
        ErrorCode.BodyTooLarge,
        `The request body is larger than this proxy's MAX_BODY_SIZE of ${max} bytes.`,
      ),
  });
  try {
    for (;;) {
      let next: IteratorResult<BodyChunk>;
      try {
        next = await untilAborted(chunks.next(), deadline.signal);
      } catch (error) {
        if (error instanceof ProtocolError || deadline.signal.aborted)
          throw error;
        throw new ApplicationGoneError(error); // its request stream broke off
      }
      if (next.done) break;
      const chunk = next.value;
      await deps.api.sendChunk(
        id,
        chunk.index,
        chunk.final,
        chunk.data,
        deadline.signal,
      );
      stats.bytesUp += chunk.data.length;
      stats.chunksUp += 1;
      deadline.progress();
      if (chunk.final) break;
    }
  } finally {
    // Closes the reader (it detaches from the stream without destroying it).
    // Any failure of the reader was already thrown by next() above. After an
    // abort the reader may still wait on the application: not waited for.
    const closing = chunks.return(undefined).catch(() => undefined);
    if (!deadline.signal.aborted) await closing;
  }
  if (request.bodySize !== null && stats.bytesUp !== request.bodySize) {
    throw new ApplicationGoneError(); // a Content-Length body that ended short
  }
}

/**
 * Step: fetch the response chunk by chunk and stream it to the application.
 *
 * ```
 * GET /proxy/response #0 ─┬─ 202 ─▶ ask again (the server long-polled already)
 *                         └─ 200 ─▶ writeHead (chunk 0) ─▶ write, await drain ─▶ #1 … ─▶ end
 * ```
 */
async function downloadResponse({
  id,
  io,
  deps,
  deadline,
  stats,
}: Relay): Promise<void> {
  for (let index = 0; ;) {
    const chunk = await deps.api.readResponseChunk(id, index, deadline.signal);
    if (chunk === PENDING) continue;
    deadline.progress();
    if (chunk.head) writeTargetHead(io.res, chunk.head);
    stats.chunksDown += 1;
    stats.bytesDown += chunk.data.length;
    await writeBody(io.res, chunk.data, deadline.signal);
    if (!chunk.more) {
      io.res.end();
      return;
    }
    index += 1;
  }
}

/** Tells the application what went wrong, or cuts its response off if the head is out. */
async function answerFailure(
  { io, deps, stats, request }: Relay,
  error: unknown,
): Promise<void> {
  if (error instanceof ApplicationGoneError) {
    stats.status = 'gone';
    cutOff(io.res);
    return;
  }
  if (!(error instanceof ProtocolError)) throw error;
  if (io.res.headersSent) {
    deps.logger.warn?.(
      `${request.method} ${request.displayUrl}: response cut off after the head: ${error.message}`,
    );
    stats.status = 'cut';
    cutOff(io.res);
    return;
  }
  stats.status = error.status;
  await sendErrorAnswer(io.req, io.res, error);
}

/** Step: free the server's connection; a failure only costs the server a TTL, so it is logged at debug. */
async function releaseConnection({ id, deps }: Relay): Promise<void> {
  try {
    await deps.api.releaseConnection(id);
  } catch (error) {
    deps.logger.debug?.(
      `Releasing connection ${id} failed (it expires on the server): ${(error as Error).message}`,
    );
  }
}
