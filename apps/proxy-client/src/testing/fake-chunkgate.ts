import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  CreateConnectionDto,
  encodeHeaderPairs,
  ErrorCode,
  Header,
  pairsFromRawHeaders,
  pairsFromRecord,
  ProtocolError,
  stripHopByHop,
  validateDto,
  type ErrorBody,
  type HeaderPairs,
} from '@app/protocol';
import { verifySignature, type SigningKey } from './verify-signature.js';

/** One call the fake received, as tests inspect it. */
export interface FakeCall {
  n: number;
  method: string;
  /** Path without the stage, e.g. `/proxy/chunk`. */
  path: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** The status answered, once answered. */
  status?: number;
}

export interface FakeChunkgateOptions {
  /** Stage path the gateway serves under, e.g. `prod`. */
  stage?: string;
  /** Verify SigV4 with this key; a bad signature gets API Gateway's 403. */
  key?: SigningKey;
  /** API Gateway's payload limit: bigger calls get its 413. */
  maxBodyBytes?: number;
  /** The server's long-poll bound before answering 202. */
  responseWaitMs?: number;
  /** Fault injection: answer a call instead of the fake (return true if answered). */
  intercept?: (call: FakeCall, res: http.ServerResponse) => boolean;
  /** Fault injection: process the call, then drop the connection instead of answering. */
  loseAnswer?: (call: FakeCall) => boolean;
}

interface Connection {
  dto: CreateConnectionDto;
  chunks: Map<number, Buffer>;
  finalIndex?: number;
  dispatched: boolean;
  status?: number;
  reason?: string;
  headers?: HeaderPairs;
  sealed: Buffer[];
  current: Buffer[];
  currentSize: number;
  done: boolean;
  error?: { status: number; body: ErrorBody };
  changed: Set<() => void>;
  target?: http.ClientRequest;
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function fail(
  res: http.ServerResponse,
  status: number,
  error: ErrorCode,
  message: string,
): void {
  json(res, status, { error, message });
}

function single(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Test support: a small, faithful in-process stand-in for API Gateway in
 * front of proxy-server, speaking docs/PROTOCOL.md (connection, chunks in
 * any order, long-polled response chunks with the target's head on chunk 0,
 * release), with the gateway's own refusals (403 signature, 413 size) and a
 * hook to inject faults. Used where the real apps cannot produce a failure
 * on demand; it forwards to a real target over HTTP.
 */
export async function startFakeChunkgate(options: FakeChunkgateOptions = {}) {
  const stage = options.stage ? `/${options.stage}` : '';
  const wait = options.responseWaitMs ?? 200;
  const connections = new Map<string, Connection>();
  const calls: FakeCall[] = [];

  const server = http.createServer(async (req, res) => {
    const parts: Buffer[] = [];
    for await (const part of req) parts.push(part as Buffer);
    const body = Buffer.concat(parts);
    const url = req.url ?? '';
    const path = url.startsWith(stage)
      ? url.slice(stage.length).split('?')[0]
      : url;
    const call: FakeCall = {
      n: calls.length + 1,
      method: req.method ?? '',
      path,
      headers: req.headers,
      body,
    };
    calls.push(call);
    res.on('finish', () => (call.status = res.statusCode));
    if (options.intercept?.(call, res)) return;
    if (options.loseAnswer?.(call)) {
      // The work is done, the answer never arrives: the client must retry.
      res.writeHead = (() => {
        req.socket.destroy();
        return res;
      }) as typeof res.writeHead;
      res.end = (() => res) as typeof res.end;
    }
    if (
      options.maxBodyBytes !== undefined &&
      body.length > options.maxBodyBytes
    ) {
      json(res, 413, { message: 'Request Entity Too Large' });
      return;
    }
    if (options.key) {
      const check = await verifySignature(
        { method: call.method, url, headers: req.headers, body },
        options.key,
      );
      if (!check.valid) {
        json(res, 403, {
          message:
            'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.',
        });
        return;
      }
    }
    try {
      await route(call, res);
    } catch (error) {
      if (error instanceof ProtocolError)
        json(res, error.status, error.toBody());
      else json(res, 500, { error: 'internal_error', message: String(error) });
    }
  });

  async function route(
    call: FakeCall,
    res: http.ServerResponse,
  ): Promise<void> {
    const key = `${call.method} ${call.path}`;
    if (key === 'POST /proxy/connection') {
      const dto = validateDto(
        CreateConnectionDto,
        JSON.parse(call.body.toString('utf8')) as unknown,
      );
      if (connections.has(dto.connection_id)) {
        return fail(
          res,
          409,
          ErrorCode.ConnectionExists,
          `Connection ${dto.connection_id} exists.`,
        );
      }
      connections.set(dto.connection_id, {
        dto,
        chunks: new Map(),
        dispatched: false,
        sealed: [],
        current: [],
        currentSize: 0,
        done: false,
        changed: new Set(),
      });
      return json(res, 201, {
        connection_id: dto.connection_id,
        ttl_ms: 300000,
      });
    }
    const id = single(call.headers[Header.ConnectionId]) ?? '';
    const found = connections.get(id);
    if (!found)
      return fail(
        res,
        404,
        ErrorCode.ConnectionNotFound,
        `Connection ${id} is unknown or expired.`,
      );
    const conn: Connection = found;
    if (key === 'POST /proxy/chunk') {
      const index = Number(
        single(call.headers[Header.ChunkIndex]) ?? conn.chunks.size,
      );
      const final = single(call.headers[Header.ChunkFinal]) === 'true';
      conn.chunks.set(index, call.body);
      if (final) conn.finalIndex = index;
      const complete =
        conn.finalIndex !== undefined &&
        Array.from({ length: conn.finalIndex + 1 }, (_, i) =>
          conn.chunks.has(i),
        ).every(Boolean);
      const received = [...conn.chunks.values()].reduce(
        (n, b) => n + b.length,
        0,
      );
      if (complete && !conn.dispatched) {
        const body = Buffer.concat(
          Array.from({ length: conn.finalIndex! + 1 }, (_, i) =>
            conn.chunks.get(i)!,
          ),
        );
        if (conn.dto.body_size != null && body.length !== conn.dto.body_size) {
          return fail(
            res,
            400,
            ErrorCode.SizeMismatch,
            `Got ${body.length} bytes, body_size says ${conn.dto.body_size}.`,
          );
        }
        conn.dispatched = true;
        dispatch(conn, body);
      }
      return json(res, 200, {
        connection_id: id,
        chunk_index: index,
        received_bytes: received,
        complete,
      });
    }
    if (key === 'GET /proxy/response') {
      const index = Number(single(call.headers[Header.ChunkIndex]));
      const ready = () =>
        conn.error !== undefined ||
        index < conn.sealed.length - 1 ||
        (conn.done && index < conn.sealed.length);
      if (!ready()) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, wait);
          function done() {
            clearTimeout(timer);
            conn.changed.delete(check);
            resolve();
          }
          function check() {
            if (ready()) done();
          }
          conn.changed.add(check);
        });
      }
      if (
        conn.error &&
        !(
          index < conn.sealed.length - 1 ||
          (conn.done && index < conn.sealed.length)
        )
      ) {
        return json(res, conn.error.status, conn.error.body);
      }
      if (!ready()) {
        res.writeHead(202, {
          [Header.ChunkReady]: 'false',
          'content-type': 'application/json',
        });
        res.end(
          JSON.stringify({
            status: 'pending',
            message: 'not ready yet, ask again',
          }),
        );
        return;
      }
      const data = conn.sealed[index];
      const headers: Record<string, string | number> = {
        'content-type': 'application/octet-stream',
        'content-length': data.length,
        [Header.ChunkIndex]: index,
        [Header.MoreChunks]: String(
          !(conn.done && index === conn.sealed.length - 1),
        ),
      };
      if (index === 0) {
        headers[Header.TargetStatus] = conn.status!;
        headers[Header.TargetReason] = encodeURIComponent(conn.reason ?? '');
        headers[Header.TargetHeaders] = encodeHeaderPairs(conn.headers ?? []);
      }
      res.writeHead(200, headers);
      res.end(data);
      return;
    }
    if (key === 'DELETE /proxy/connection') {
      conn.target?.destroy();
      connections.delete(id);
      res.writeHead(204).end();
      return;
    }
    fail(res, 404, ErrorCode.InvalidRequest, `No route ${key}`);
  }

  function changed(conn: Connection): void {
    for (const check of conn.changed) check();
  }

  function dispatch(conn: Connection, body: Buffer): void {
    const size = conn.dto.response_chunk_size ?? 1024 * 1024;
    const host = conn.dto.target_host.replace(/^\[|\]$/g, '');
    const port = conn.dto.port ?? 80;
    const headers = [
      ...pairsFromRecord(conn.dto.headers ?? {}),
      ['Host', `${conn.dto.target_host}:${port}`],
    ].flat();
    const target = http.request({
      host,
      port,
      method: conn.dto.method,
      path: conn.dto.path,
      headers,
      agent: false,
    });
    conn.target = target;
    target.on('response', (tres) => {
      conn.status = tres.statusCode;
      conn.reason = tres.statusMessage;
      conn.headers = stripHopByHop(pairsFromRawHeaders(tres.rawHeaders));
      tres.on('data', (data: Buffer) => {
        conn.current.push(data);
        conn.currentSize += data.length;
        while (conn.currentSize >= size) {
          const all = Buffer.concat(conn.current);
          conn.sealed.push(all.subarray(0, size));
          conn.current = [all.subarray(size)];
          conn.currentSize = all.length - size;
        }
        changed(conn);
      });
      tres.on('end', () => {
        if (conn.currentSize > 0 || conn.sealed.length === 0)
          conn.sealed.push(Buffer.concat(conn.current));
        conn.current = [];
        conn.currentSize = 0;
        conn.done = true;
        changed(conn);
      });
      tres.on('error', (error) => {
        conn.error = {
          status: 502,
          body: {
            error: ErrorCode.TargetUnreachable,
            message: `The target's response broke off (${error.message}).`,
          },
        };
        changed(conn);
      });
    });
    target.on('error', (error: NodeJS.ErrnoException) => {
      if (conn.done) return;
      conn.error = {
        status: 502,
        body: {
          error: ErrorCode.TargetUnreachable,
          message: `The target ${host}:${port} could not be reached (${error.code ?? error.message}).`,
        },
      };
      changed(conn);
    });
    target.end(body);
  }

  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    /** API_GATEWAY_URL for the client, stage included. */
    url: `${origin}${stage}`,
    calls,
    connections,
    close: async () => {
      for (const conn of connections.values()) conn.target?.destroy();
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

export type FakeChunkgate = Awaited<ReturnType<typeof startFakeChunkgate>>;
