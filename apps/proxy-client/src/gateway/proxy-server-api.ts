import { STATUS_CODES } from 'node:http';
import {
  asErrorBody,
  decodeHeaderPairs,
  ErrorCode,
  Header,
  parseBooleanHeader,
  ProtocolError,
  ProxyPath,
  type CreateConnectionDto,
  type TargetHead,
} from '@app/protocol';
import {
  GatewayClient,
  type GatewayAnswer,
  type GatewayCall,
} from './gateway-client.js';
import { answerError, callFailure } from './upstream-errors.js';

/** One response chunk as the server served it. */
export interface ResponseChunk {
  index: number;
  /** True while more chunks follow. */
  more: boolean;
  /** The target's status line and headers: on chunk 0 only. */
  head?: TargetHead;
  /** The bytes, as they arrived (written on without joining them). */
  parts: readonly Buffer[];
  /** Bytes in `parts`. */
  size: number;
  /**
   * Gives the chunk's pooled buffer back (see {@link GatewayAnswer.release})
   * once its bytes were written out and flushed. Idempotent.
   */
  release(): void;
}

/** What `POST /proxy/exchange` answered. */
export type ExchangeAnswer =
  /** 201: the connection is open and chunk 0 stored; send the rest (or, if that was all, ask for the response). */
  | { kind: 'accepted' }
  /** 200: the request was whole and this is response chunk 0. */
  | { kind: 'response'; chunk: ResponseChunk }
  /** 202: the request was whole, its response not ready within the long-poll: ask for chunk 0. */
  | { kind: 'pending' }
  /** 404 invalid_request: a proxy-server that predates the exchange; nothing was opened. */
  | { kind: 'unsupported' };

/** The server waited for the chunk until its long-poll bound; ask again. */
export const PENDING = Symbol('pending');

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** A well-formed answer that does not follow the protocol: something other than proxy-server answered. */
function notTheProtocol(what: string): ProtocolError {
  return new ProtocolError(
    502,
    ErrorCode.UpstreamUnavailable,
    `${what}: is API_GATEWAY_URL pointing at a chunkgate proxy-server?`,
  );
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** A 200 answer carrying response chunk `index` (`GET /proxy/response` and the exchange alike). */
function responseChunk(answer: GatewayAnswer, index: number): ResponseChunk {
  try {
    return readResponseChunk(answer, index);
  } catch (error) {
    answer.release();
    throw error;
  }
}

function readResponseChunk(
  answer: GatewayAnswer,
  index: number,
): ResponseChunk {
  const servedIndex = single(answer.headers[Header.ChunkIndex]);
  if (servedIndex !== undefined && Number(servedIndex) !== index) {
    throw notTheProtocol(
      `Asked for response chunk ${index}, got chunk ${servedIndex}`,
    );
  }
  const more = single(answer.headers[Header.MoreChunks]);
  if (more === undefined) {
    throw notTheProtocol(`Response chunk ${index} came without X-More-Chunks`);
  }
  return {
    index,
    more: parseBooleanHeader(more),
    head: index === 0 ? readTargetHead(answer) : undefined,
    parts: answer.parts,
    size: answer.size,
    release: () => answer.release(),
  };
}

/** Reads the target's status line and headers from response chunk 0. */
function readTargetHead(answer: GatewayAnswer): TargetHead {
  const rawStatus = single(answer.headers[Header.TargetStatus]) ?? '';
  const status = Number(rawStatus);
  if (!/^\d{3}$/.test(rawStatus) || status < 200 || status > 599) {
    throw notTheProtocol(
      `Response chunk 0 carried no valid X-Target-Status (${JSON.stringify(rawStatus.slice(0, 20))})`,
    );
  }
  let headers: TargetHead['headers'] = [];
  const encoded = single(answer.headers[Header.TargetHeaders]);
  if (encoded) {
    try {
      headers = decodeHeaderPairs(encoded);
    } catch {
      throw notTheProtocol(
        'Response chunk 0 carried an unreadable X-Target-Headers',
      );
    }
  }
  return { status, reason: readReason(answer, status), headers };
}

/** The URI-encoded reason phrase, or the standard one if it is missing or could not go on a status line. */
function readReason(answer: GatewayAnswer, status: number): string {
  const fallback = STATUS_CODES[status] ?? '';
  const raw = single(answer.headers[Header.TargetReason]);
  if (!raw) return fallback;
  try {
    const reason = decodeURIComponent(raw);
    return /^[\t\x20-\x7e\x80-\xff]*$/.test(reason) ? reason : fallback;
  } catch {
    return fallback;
  }
}

/**
 * The calls of the wire protocol (docs/PROTOCOL.md), each turning the
 * server's answer into a value or into the error the application sees.
 * Retries are the gateway client's; here is what an answer means,
 * including the answers that only a retry can produce.
 */
export class ProxyServerApi {
  constructor(private readonly gateway: GatewayClient) {}

  /** `POST /proxy/connection`. A 409 answering a retry means the lost first attempt created it. */
  async openConnection(
    connection: CreateConnectionDto,
    signal?: AbortSignal,
  ): Promise<void> {
    const answer = await this.send({
      method: 'POST',
      path: ProxyPath.Connection,
      headers: { 'content-type': 'application/json' },
      body: Buffer.from(JSON.stringify(connection), 'utf8'),
      signal,
    });
    if (answer.status === 201 || answer.status === 200) return;
    if (answer.status === 409 && answer.attempts > 1) return;
    throw this.failure(answer, ProxyPath.Connection, 'POST');
  }

  /** `POST /proxy/chunk`: one piece of the request body. Idempotent, so retries are harmless. */
  async sendChunk(
    connectionId: string,
    index: number,
    final: boolean,
    data: Buffer,
    signal?: AbortSignal,
  ): Promise<void> {
    const answer = await this.send({
      method: 'POST',
      path: ProxyPath.Chunk,
      headers: {
        'content-type': 'application/octet-stream',
        [Header.ConnectionId]: connectionId,
        [Header.ChunkIndex]: String(index),
        [Header.ChunkFinal]: String(final),
      },
      body: data,
      signal,
    });
    if (answer.status !== 200) {
      throw this.failure(answer, ProxyPath.Chunk, 'POST', data.length);
    }
  }

  /** `GET /proxy/response`: chunk `index`, or {@link PENDING} when the server's long-poll expired first. */
  async readResponseChunk(
    connectionId: string,
    index: number,
    signal?: AbortSignal,
  ): Promise<ResponseChunk | typeof PENDING> {
    const answer = await this.send({
      method: 'GET',
      path: ProxyPath.Response,
      headers: {
        [Header.ConnectionId]: connectionId,
        [Header.ChunkIndex]: String(index),
      },
      signal,
    });
    if (answer.status === 202) {
      answer.release();
      return PENDING;
    }
    if (answer.status !== 200) {
      throw this.failure(answer, ProxyPath.Response, 'GET');
    }
    return responseChunk(answer, index);
  }

  /**
   * `POST /proxy/exchange`: opens the connection whose JSON head starts
   * `framed` and delivers the first request chunk that follows it
   * (`headLength` bytes in). Retrying is safe: the server answers a repeated
   * `connection_id` as it answered the first call.
   */
  async exchange(
    framed: Buffer,
    headLength: number,
    final: boolean,
    signal?: AbortSignal,
  ): Promise<ExchangeAnswer> {
    const answer = await this.send({
      method: 'POST',
      path: ProxyPath.Exchange,
      headers: {
        'content-type': 'application/octet-stream',
        [Header.HeadLength]: String(headLength),
        [Header.ChunkFinal]: String(final),
      },
      body: framed,
      signal,
    });
    if (answer.status === 201) return { kind: 'accepted' };
    if (answer.status === 202) return { kind: 'pending' };
    if (answer.status === 200 && final) {
      return { kind: 'response', chunk: responseChunk(answer, 0) };
    }
    if (
      answer.status === 404 &&
      asErrorBody(parseJson(answer.body))?.error === ErrorCode.InvalidRequest
    ) {
      return { kind: 'unsupported' };
    }
    throw this.failure(answer, ProxyPath.Exchange, 'POST', framed.length);
  }

  /** `DELETE /proxy/connection`. A 404 answering a retry means the lost first attempt freed it. */
  async releaseConnection(connectionId: string): Promise<void> {
    const answer = await this.send({
      method: 'DELETE',
      path: ProxyPath.Connection,
      headers: { [Header.ConnectionId]: connectionId },
    });
    if (answer.status === 204 || answer.status === 200) return;
    if (answer.status === 404 && answer.attempts > 1) return;
    throw this.failure(answer, ProxyPath.Connection, 'DELETE');
  }

  private async send(call: GatewayCall): Promise<GatewayAnswer> {
    try {
      return await this.gateway.call(call);
    } catch (error) {
      if (call.signal?.aborted && error === call.signal.reason) throw error;
      throw callFailure(error);
    }
  }

  private failure(
    answer: GatewayAnswer,
    path: string,
    method: string,
    bodyBytes?: number,
  ): ProtocolError {
    const error = answerError(answer, {
      method,
      url: this.gateway.urlOf(path),
      bodyBytes,
    });
    answer.release(); // what it said is in the error now
    return error;
  }
}
