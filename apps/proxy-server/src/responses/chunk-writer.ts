import type { ServerResponse } from 'node:http';
import { encodeHeaderPairs, Header } from '@app/protocol';
import type { ChunkRead } from './response-chunks.js';

/**
 * Writes the answer of `GET /proxy/response` (also that of
 * `POST /proxy/exchange` with a final chunk): 202 pending, or 200 with the
 * chunk's bytes — written piece by piece as they arrived from the target,
 * never copied into one buffer — and the protocol headers (chunk 0: the
 * target's status and headers too).
 */
export function writeChunk(res: ServerResponse, chunk: ChunkRead): void {
  if (!chunk.ready) {
    const body = JSON.stringify({
      status: 'pending',
      message:
        'The response chunk is not ready yet (the target is still working or sending): ask again.',
    });
    res.writeHead(202, {
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(body),
      [Header.ChunkReady]: 'false',
    });
    res.end(body);
    return;
  }
  const head: Record<string, string | number> = {
    'Content-Type': 'application/octet-stream',
    'Content-Length': chunk.size,
    [Header.ChunkIndex]: String(chunk.index),
    [Header.MoreChunks]: String(chunk.more),
  };
  if (chunk.head) {
    head[Header.TargetStatus] = String(chunk.head.status);
    head[Header.TargetReason] = encodeURIComponent(chunk.head.reason);
    head[Header.TargetHeaders] = encodeHeaderPairs(chunk.head.headers);
  }
  res.writeHead(200, head);
  for (const part of chunk.parts) res.write(part);
  res.end();
}
