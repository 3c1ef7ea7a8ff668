import type { IncomingMessage } from 'node:http';
import { Injectable } from '@nestjs/common';
import { type ChunkAccepted, ErrorCode, ProtocolError } from '@app/protocol';
import {
  type BodyPieces,
  joined,
  readBodyPieces,
} from '../common/read-body.js';
import { ChunksService } from '../chunks/chunks.service.js';
import {
  connectionJsonTooLarge,
  MAX_CONNECTION_JSON_BYTES,
  readConnectionHead,
} from '../connections/connection-json.js';
import { ConnectionsService } from '../connections/connections.service.js';
import type { ChunkRead } from '../responses/response-chunks.js';
import { ResponsesService } from '../responses/responses.service.js';

/** What `POST /proxy/exchange` answers: the chunk receipt, or response chunk 0. */
export type ExchangeOutcome =
  | { kind: 'accepted'; receipt: ChunkAccepted }
  | { kind: 'response'; chunk: ChunkRead };

/**
 * `POST /proxy/exchange`, the one-call fast path: the three steps of the
 * separate calls in a row, each done by the service that does it for them,
 * so that the fast path cannot drift from the protocol.
 *
 * ```
 * body ──read (head ≤ 1 MiB + chunk ≤ MAX_CHUNK_SIZE)──▶ split at X-Head-Length
 *   head  ──▶ parse + validate (as POST /proxy/connection) ──▶ ConnectionsService.open
 *   chunk ──▶ ChunksService.add(index 0)           ──▶ not final: 201 receipt
 *                                                   ──▶ final: ResponsesService.fetch(0)
 * ```
 *
 * A retry (same id, same head) finds the connection, re-sends chunk 0 —
 * which the body recognises and answers like the first time, without a
 * second target request — and reads chunk 0 again.
 */
@Injectable()
export class ExchangeService {
  constructor(
    private readonly connections: ConnectionsService,
    private readonly chunks: ChunksService,
    private readonly responses: ResponsesService,
  ) {}

  async exchange(
    headLength: number,
    final: boolean,
    body: IncomingMessage,
    signal: AbortSignal,
  ): Promise<ExchangeOutcome> {
    if (headLength > MAX_CONNECTION_JSON_BYTES) {
      throw connectionJsonTooLarge(headLength);
    }
    const read = await readBodyPieces(
      body,
      headLength + this.chunks.maxChunkSize,
      (bytes) => this.chunks.tooLarge(bytes - headLength),
    );
    if (read.size < headLength) {
      throw new ProtocolError(
        400,
        ErrorCode.InvalidRequest,
        `X-Head-Length is ${headLength}, but the body has only ${read.size} bytes: send the connection JSON's byte length, then the JSON, then the chunk.`,
      );
    }
    const [head, chunk] = split(read, headLength);
    const dto = readConnectionHead(joined(head));
    const connection = await this.connections.open(dto);
    const receipt = await this.chunks.add(connection.id, 0, final, chunk.parts);
    if (!final) return { kind: 'accepted', receipt };
    return {
      kind: 'response',
      chunk: await this.responses.fetch(connection.id, 0, signal),
    };
  }
}

/** The first `at` bytes and the rest, as pieces: only the piece on the boundary is cut (without a copy). */
function split(body: BodyPieces, at: number): [BodyPieces, BodyPieces] {
  const head: Buffer[] = [];
  const rest: Buffer[] = [];
  let offset = 0;
  for (const part of body.parts) {
    const end = offset + part.length;
    if (end <= at) head.push(part);
    else if (offset >= at) rest.push(part);
    else {
      head.push(part.subarray(0, at - offset));
      rest.push(part.subarray(at - offset));
    }
    offset = end;
  }
  return [
    { parts: head, size: at },
    { parts: rest, size: body.size - at },
  ];
}
