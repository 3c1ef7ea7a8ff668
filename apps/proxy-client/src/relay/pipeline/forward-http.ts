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
import type {
  ProxyServerApi,
  ResponseChunk,
} from '../../gateway/proxy-server-api.js';
import {
  chunkBufferPool,
  readChunks,
  type BodyChunk,
} from '../chunk-reader.js';
import { uploadChunks, type UploadGauge } from '../chunk-uploader.js';
import {
  ApplicationGoneError,
  newStats,
  type ExchangeIo,
  type ExchangeStats,
} from '../exchange.js';
import { ExchangeDeadline, untilAborted } from '../exchange-deadline.js';
import {
  prefetchResponse,
  type DownloadGauge,
} from '../response-prefetcher.js';
import {
  contentLength,
  writeBody,
  writeTargetHead,
} from '../response-writer.js';
import type { HttpProxyRequest } from './prepare-proxy-request.js';

export interface ForwardHttpDeps {
  api: ProxyServerApi;
  /** CHUNK_SIZE: upload chunks (the exchange's JSON head included) and the response chunks asked for. */
  chunkSize: number;
  /** MAX_BODY_SIZE, enforced while a chunked body streams in. */
  maxBodySize: number;
  /** REQUEST_TIMEOUT_MS: longest time without progress. */
  requestTimeoutMs: number;
  /** UPLOAD_CONCURRENCY: request chunks in flight at once. */
  uploadConcurrency: number;
  /** DOWNLOAD_CONCURRENCY: response chunks asked for at once (`download_window`). */
  downloadConcurrency: number;
  /** COMBINED_CALL: open, send the first chunk and get the first answer in one call. */
  combinedCall: boolean;
  logger: LoggerService;
  /** Aborts the exchange with its reason (the app is shutting down). */
  shutdown?: AbortSignal;
  newConnectionId?: () => string;
  /** Measures what the upload and download held (tests). */
  gauges?: { upload?: UploadGauge; download?: DownloadGauge };
}

/** State shared by the steps of one exchange. */
interface Relay {
  id: string;
  request: HttpProxyRequest;
  io: ExchangeIo;
  deps: ForwardHttpDeps;
  deadline: ExchangeDeadline;
  stats: ExchangeStats;
  /** The server may hold the connection: a call to open it went out and did not fail plainly. */
  opened: boolean;
  /** The last response chunk arrived: the server releases the connection by itself. */
  finished: boolean;
  /** The application's body, as chunks; positioned after those already sent. */
  chunks?: AsyncGenerator<BodyChunk>;
}

/** Where the upload stands once the connection is open. */
interface Opened {
  /** The whole body was sent. */
  uploaded: boolean;
  /** Response chunk 0, when the exchange call brought it. */
  first?: ResponseChunk;
}

/**
 * proxy-servers that answered `POST /proxy/exchange` with 404: they predate
 * it, and every exchange to them goes through the separate calls. Keyed by
 * the api, i.e. by gateway.
 */
const withoutExchange = new WeakSet<ProxyServerApi>();

/**
 * Strategy for plain HTTP: relays one request and its response through the
 * gateway, several chunks at a time in each direction.
 *
 * ```
 * app                  proxy-client                             gateway → proxy-server → target
 *  │ head ───────────▶  │ (100 Continue if the app asked for it)
 *  │ body ───────────▶  │ POST /proxy/exchange: JSON head + chunk 0 ─▶│ whole body: target request sent,
 *  │ ◀── head, body ─── │ ◀── 200 response chunk 0 (202: GET it) ─────│ answer = response chunk 0
 *  │                    │   or 201, then POST /proxy/chunk #1…final ─▶│ UPLOAD_CONCURRENCY at once
 *  │ ◀── body ───────── │ ◀── GET /proxy/response #1… ────────────────│ DOWNLOAD_CONCURRENCY at once, in order
 *  │                    │ no DELETE: the server frees a connection whose last chunk it served
 * ```
 *
 * A small request is one call. COMBINED_CALL=false (or a JSON head too
 * large to leave room in a chunk, or a server without the exchange) opens
 * with `POST /proxy/connection` and sends chunk 0 like the others; with
 * both concurrencies 1 too, this is the seed's sequence of calls.
 *
 * Failures before the head reached the application become a JSON error
 * answer; after it, the application's connection is cut, never ended as if
 * complete. An exchange that ends before its last response chunk (the
 * application went away, an error, a timeout) releases its connection with
 * `DELETE /proxy/connection`.
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
    opened: false,
    finished: false,
  };
  const { res } = io;
  const onClose = () => {
    if (!res.writableFinished) relay.deadline.abort(new ApplicationGoneError());
  };
  res.once('close', onClose);
  const onShutdown = () => relay.deadline.abort(deps.shutdown?.reason as Error);
  deps.shutdown?.addEventListener('abort', onShutdown, { once: true });
  try {
    const opened = await openConnection(relay);
    const chunks = relay.chunks!;
    if (!opened.uploaded) await uploadRest(relay, chunks);
    await closeReader(relay);
    await downloadResponse(relay, opened.first);
    relay.stats.status = res.statusCode;
  } catch (error) {
    // A read may still wait on the application: not waited for.
    void closeReader(relay);
    const signal = relay.deadline.signal;
    await answerFailure(relay, signal.aborted ? signal.reason : error);
  } finally {
    res.off('close', onClose);
    deps.shutdown?.removeEventListener('abort', onShutdown);
    relay.deadline.dispose();
    // Aborted while opening, the server may have created it all the same.
    const mayHold = relay.opened || relay.deadline.signal.aborted;
    if (mayHold && !relay.finished) await releaseConnection(relay);
  }
  return relay.stats;
}

/** The connection JSON: everything the server needs for the target request. */
function connectionHead({ id, request, deps }: Relay): CreateConnectionDto {
  return {
    connection_id: id,
    target_host: request.targetHost,
    port: request.port,
    scheme: request.scheme,
    method: request.method,
    path: request.path,
    headers: recordFromPairs(request.headers),
    body_size: request.bodySize,
    response_chunk_size: deps.chunkSize,
    download_window: deps.downloadConcurrency,
  };
}

/**
 * Step: open the connection on the server, in one call with the first
 * chunk when it can.
 *
 * ```
 * COMBINED_CALL and head < CHUNK_SIZE ─▶ 100 Continue ─▶ read chunk 0 (CHUNK_SIZE − head)
 *   ─▶ POST /proxy/exchange ─┬─ 200/202 (chunk 0 was the body) ─▶ download
 *                            ├─ 201 ─▶ upload from chunk 1
 *                            └─ 404 (server without it) ─▶ POST /proxy/connection + chunk 0
 * otherwise ─▶ POST /proxy/connection ─▶ 100 Continue ─▶ upload from chunk 0
 * ```
 */
async function openConnection(relay: Relay): Promise<Opened> {
  const { request, io, deps, deadline } = relay;
  const dto = connectionHead(relay);
  const head = Buffer.from(JSON.stringify(dto), 'utf8');
  const room = deps.chunkSize - head.length;
  const fits = room >= (request.bodySize === 0 ? 0 : 1);
  if (!deps.combinedCall || !fits || withoutExchange.has(deps.api)) {
    await opening(relay, deps.api.openConnection(dto, deadline.signal));
    deadline.progress();
    if (io.expectsContinue) sendContinue(io.res);
    relay.chunks = bodyReader(relay);
    return { uploaded: false };
  }

  // The body is read before any call, so the application must be told to send it.
  if (io.expectsContinue) sendContinue(io.res);
  relay.chunks = bodyReader(relay, { size: room, prefix: head });
  const next = await nextChunk(relay, relay.chunks, deadline.signal);
  if (next.done) throw new Error('The chunk reader yielded no chunk 0');
  const chunk = next.value;
  try {
    return await exchangeFirst(relay, dto, head, chunk);
  } finally {
    chunk.release();
  }
}

/** The exchange call with chunk 0 (and its fallback to the separate calls). */
async function exchangeFirst(
  relay: Relay,
  dto: CreateConnectionDto,
  head: Buffer,
  chunk: BodyChunk,
): Promise<Opened> {
  const { deps, deadline, stats } = relay;
  const framed = chunk.framed ?? chunk.data;
  const answer = await opening(
    relay,
    deps.api.exchange(framed, head.length, chunk.final, deadline.signal),
  );
  if (answer.kind === 'unsupported') {
    relay.opened = false; // the server said so: nothing to release
    withoutExchange.add(deps.api);
    deps.logger.warn?.(
      'proxy-server does not know POST /proxy/exchange: using the separate calls from now on (update proxy-server to save round trips)',
    );
    await opening(relay, deps.api.openConnection(dto, deadline.signal));
    await sendChunk(relay, chunk, deadline.signal);
    return { uploaded: chunk.final };
  }
  deadline.progress();
  stats.bytesUp += chunk.data.length;
  stats.chunksUp += 1;
  if (answer.kind === 'response')
    return { uploaded: true, first: answer.chunk };
  return { uploaded: chunk.final };
}

/**
 * Runs a call that opens the connection, keeping track of whether the
 * server may now hold it (and so needs a release if the exchange is
 * abandoned): from the moment the call goes out, unless it failed plainly.
 */
async function opening<T>(relay: Relay, call: Promise<T>): Promise<T> {
  relay.opened = true;
  try {
    return await call;
  } catch (error) {
    if (!mayHaveOpened(error)) relay.opened = false;
    throw error;
  }
}

/**
 * A failed open that may still have left a connection on the server: the
 * target's verdict on chunk 0 (the exchange had created it), or a gateway
 * timeout. A plain refusal (400, 403, 413) opened nothing.
 */
function mayHaveOpened(error: unknown): boolean {
  if (!(error instanceof ProtocolError)) return true;
  const opened: string[] = [
    ErrorCode.TargetUnreachable,
    ErrorCode.TargetTimeout,
    ErrorCode.GatewayTimeout,
  ];
  return opened.includes(error.code);
}

/** The application's body as chunks; chunk 0 smaller and framed behind `first.prefix` for the exchange. */
function bodyReader(
  { io, request, deps }: Relay,
  first?: { size: number; prefix: Buffer },
): AsyncGenerator<BodyChunk> {
  return readChunks(io.req, {
    chunkSize: deps.chunkSize,
    firstChunkSize: first?.size,
    firstChunkPrefix: first?.prefix,
    expectedBytes: request.bodySize,
    maxBytes: deps.maxBodySize,
    pool: chunkBufferPool(deps.chunkSize),
    tooLarge: (max) =>
      new ProtocolError(
        413,
        ErrorCode.BodyTooLarge,
        `The request body is larger than this proxy's MAX_BODY_SIZE of ${max} bytes.`,
      ),
  });
}

/** The next chunk of the body; a broken-off request stream means the application is gone. */
async function nextChunk(
  { deadline }: Relay,
  chunks: AsyncGenerator<BodyChunk>,
  signal: AbortSignal,
): Promise<IteratorResult<BodyChunk>> {
  try {
    return await untilAborted(chunks.next(), signal);
  } catch (error) {
    if (
      error instanceof ProtocolError ||
      signal.aborted ||
      deadline.signal.aborted
    )
      throw error;
    throw new ApplicationGoneError(error); // its request stream broke off, or ended short
  }
}

/** One `POST /proxy/chunk`, counted as progress. */
async function sendChunk(
  { id, deps, deadline, stats }: Relay,
  chunk: BodyChunk,
  signal: AbortSignal,
): Promise<void> {
  await deps.api.sendChunk(id, chunk.index, chunk.final, chunk.data, signal);
  stats.bytesUp += chunk.data.length;
  stats.chunksUp += 1;
  deadline.progress();
}

/**
 * Step: stream the rest of the application's body up, UPLOAD_CONCURRENCY
 * chunks at a time (see {@link uploadChunks}).
 *
 * ```
 * read ≤ CHUNK_SIZE ─▶ POST /proxy/chunk #i (X-Chunk-Index) ─▶ … ─▶ final chunk, all acknowledged
 *  (the application's stream is paused while the window is full)
 * ```
 */
async function uploadRest(
  relay: Relay,
  chunks: AsyncGenerator<BodyChunk>,
): Promise<void> {
  await uploadChunks({
    window: relay.deps.uploadConcurrency,
    read: (signal) => nextChunk(relay, chunks, signal),
    send: (chunk, signal) =>
      sendChunk(relay, chunk, signal).finally(chunk.release),
    signal: relay.deadline.signal,
    gauge: relay.deps.gauges?.upload,
  });
}

/**
 * Closes the body's reader (it detaches from the stream without destroying
 * it). Any failure of the reader was already thrown by next(). After an
 * abort the reader may still wait on the application: not waited for.
 */
async function closeReader({ chunks, deadline }: Relay): Promise<void> {
  if (!chunks) return;
  const closing = chunks.return(undefined).catch(() => undefined);
  if (!deadline.signal.aborted) await closing;
}

/**
 * Step: fetch the response, DOWNLOAD_CONCURRENCY chunks at a time, and
 * stream it to the application in order (see {@link prefetchResponse}).
 *
 * ```
 * chunk 0 (from the exchange, or GET #0; 202 ─▶ ask again) ─▶ writeHead
 *   ─▶ GET #1 … (prefetched) ─▶ write in order, await drain ─▶ … ─▶ X-More-Chunks: false ─▶ end
 * ```
 */
async function downloadResponse(
  relay: Relay,
  first: ResponseChunk | undefined,
): Promise<void> {
  const { id, io, deps, deadline, stats } = relay;
  const chunks = prefetchResponse({
    window: deps.downloadConcurrency,
    chunkSize: deps.chunkSize,
    fetch: (index, signal) => deps.api.readResponseChunk(id, index, signal),
    first,
    signal: deadline.signal,
    gauge: deps.gauges?.download,
  });
  /** Body bytes the application's response has to carry, when the target said. */
  let length: number | undefined;
  for await (const chunk of chunks) {
    deadline.progress();
    if (!chunk.more) relay.finished = true;
    if (chunk.head) {
      writeTargetHead(io.res, chunk.head);
      length = contentLength(chunk.head);
    }
    stats.chunksDown += 1;
    stats.bytesDown += chunk.size;
    // The chunk's buffer goes back to the pool once the socket is done with it.
    if (io.res.writableEnded) chunk.release();
    else await writeBody(io.res, chunk.parts, deadline.signal, chunk.release);
    // The application has its whole response once it has Content-Length
    // bytes; it may close at once, while the server's last chunk (maybe an
    // empty one) is still to be fetched: so end now, and fetch on.
    if (!chunk.more || (length !== undefined && stats.bytesDown >= length)) {
      if (!io.res.writableEnded) io.res.end();
    }
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

/** Step: free an abandoned connection; a failure only costs the server a TTL, so it is logged at debug. */
async function releaseConnection({ id, deps }: Relay): Promise<void> {
  try {
    await deps.api.releaseConnection(id);
  } catch (error) {
    deps.logger.debug?.(
      `Releasing connection ${id} failed (it expires on the server): ${(error as Error).message}`,
    );
  }
}
