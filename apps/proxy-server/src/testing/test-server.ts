import { randomUUID } from 'node:crypto';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { Agent, request } from 'undici';
import { decodeHeaderPairs, type HeaderPairs } from '@app/protocol';
import { createServerApp, listen } from '../app.js';
import type { Clock } from '../common/clock.js';

/** A clock the test moves by hand. */
export class ManualClock implements Clock {
  constructor(public time = 1_700_000_000_000) {}
  now(): number {
    return this.time;
  }
  advance(ms: number): void {
    this.time += ms;
  }
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  json<T = { error: string; message: string }>(): T;
}

/** proxy-server on 127.0.0.1 and a free port, with helpers that speak the protocol. */
export async function startTestServer(
  env: Record<string, string> = {},
  clock = new ManualClock(),
) {
  const app: NestExpressApplication = await createServerApp({
    env: { LOG_LEVEL: 'error', ...env },
    clock,
    logger: ['error'],
  });
  const url = await listen(app, 0, '127.0.0.1');
  const agent = new Agent({ connections: 64 });

  async function call(
    method: string,
    path: string,
    headers: Record<string, string> = {},
    body?: string | Buffer | AsyncIterable<Buffer>,
  ): Promise<Answer> {
    const res = await request(`${url}${path}`, {
      method: method as 'GET',
      headers,
      body: body as string | Buffer | undefined,
      dispatcher: agent,
    });
    const data = Buffer.from(await res.body.arrayBuffer());
    return {
      status: res.statusCode,
      headers: res.headers,
      body: data,
      json: <T>() => JSON.parse(data.toString()) as T,
    };
  }

  /** Opens a connection; `fields` override the defaults. */
  async function open(fields: Record<string, unknown> = {}) {
    const id = randomUUID();
    const res = await call(
      'POST',
      '/proxy/connection',
      { 'content-type': 'application/json' },
      JSON.stringify({
        connection_id: id,
        target_host: '127.0.0.1',
        method: 'GET',
        path: '/echo',
        ...fields,
      }),
    );
    return { id, res };
  }

  function chunk(
    id: string,
    data: string | Buffer,
    options: {
      index?: number;
      final?: boolean;
      headers?: Record<string, string>;
    } = {},
  ): Promise<Answer> {
    const headers: Record<string, string> = {
      'x-connection-id': id,
      'content-type': 'application/octet-stream',
      ...options.headers,
    };
    if (options.index !== undefined)
      headers['x-chunk-index'] = String(options.index);
    if (options.final) headers['x-chunk-final'] = 'true';
    return call('POST', '/proxy/chunk', headers, data);
  }

  function response(id: string, index: number): Promise<Answer> {
    return call('GET', '/proxy/response', {
      'x-connection-id': id,
      'x-chunk-index': String(index),
    });
  }

  /**
   * Fetches every response chunk in order (asking again on 202) and returns
   * the target's head and the chunks. Stops at the first error answer.
   */
  async function fetchAll(id: string, onChunk?: (index: number) => void) {
    const chunks: Buffer[] = [];
    let head:
      { status: number; reason: string; headers: HeaderPairs } | undefined;
    for (let index = 0; ;) {
      const res = await response(id, index);
      if (res.status === 202) continue;
      if (res.status !== 200) return { head, chunks, error: res };
      expect(res.headers['x-chunk-index']).toBe(String(index));
      if (index === 0) {
        head = {
          status: Number(res.headers['x-target-status']),
          reason: decodeURIComponent(String(res.headers['x-target-reason'])),
          headers: decodeHeaderPairs(String(res.headers['x-target-headers'])),
        };
      }
      chunks.push(res.body);
      onChunk?.(index);
      if (res.headers['x-more-chunks'] === 'false') return { head, chunks };
      expect(res.headers['x-more-chunks']).toBe('true');
      index += 1;
    }
  }

  /**
   * `POST /proxy/exchange`: the connection JSON (`head`, as given) followed
   * by `body`, X-Head-Length the JSON's byte length unless `headLength` says
   * otherwise (a string is sent as is; null leaves the header out).
   */
  function exchangeCall(
    head: Record<string, unknown>,
    body: Buffer | string = '',
    options: { final?: boolean; headLength?: string | null } = {},
  ): Promise<Answer> {
    const json = Buffer.from(JSON.stringify(head));
    const headers: Record<string, string> = {
      'content-type': 'application/octet-stream',
    };
    const length =
      options.headLength === undefined
        ? String(json.length)
        : options.headLength;
    if (length !== null) headers['x-head-length'] = length;
    if (options.final ?? true) headers['x-chunk-final'] = 'true';
    return call(
      'POST',
      '/proxy/exchange',
      headers,
      Buffer.concat([json, Buffer.from(body)]),
    );
  }

  /** Opens, sends `body` in one final chunk, and fetches the whole answer. */
  async function exchange(
    fields: Record<string, unknown>,
    body: Buffer | string = '',
  ) {
    const { id, res } = await open(fields);
    expect(res.status).toBe(201);
    const sent = await chunk(id, body, { index: 0, final: true });
    expect(sent.status).toBe(200);
    return { id, ...(await fetchAll(id)) };
  }

  return {
    app,
    url,
    clock,
    call,
    open,
    chunk,
    response,
    fetchAll,
    exchange,
    exchangeCall,
    close: async () => {
      await app.close();
      await agent.close();
    },
  };
}

export type TestServer = Awaited<ReturnType<typeof startTestServer>>;
