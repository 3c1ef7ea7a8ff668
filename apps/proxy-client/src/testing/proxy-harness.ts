import { once } from 'node:events';
import http from 'node:http';
import type { INestMicroservice, LoggerService } from '@nestjs/common';
import { createClientApp } from '../app.js';

/** A proxy-client started in this process. */
export interface RunningClient {
  app: INestMicroservice;
  url: string;
  port: number;
}

/**
 * Starts proxy-client (createClientApp, as main.ts does) on a free port with
 * `env` on top of the process environment, which is restored afterwards
 * (the config is read once, at creation).
 */
export async function startClient(
  env: Record<string, string>,
  logger: LoggerService | false = false,
): Promise<RunningClient> {
  const saved = { ...process.env };
  Object.assign(process.env, {
    CLIENT_LISTEN_PORT: '0',
    GATEWAY_RETRY_BASE_MS: '5',
    ...env,
  });
  try {
    const { app, listener } = await createClientApp({ logger });
    await app.listen();
    return { app, url: listener.address().url, port: listener.address().port };
  } finally {
    process.env = saved;
  }
}

/** What an application got from the proxy. */
export interface Proxied {
  status: number;
  rawHeaders: string[];
  body: Buffer;
  /** False when the response broke off before its end. */
  complete: boolean;
  /** How sending the request failed, if it did (EPIPE, ECONNRESET). */
  requestError?: string;
}

/** One request through the proxy with node:http (absolute-form request line). */
export async function viaProxy(
  proxyUrl: string,
  targetUrl: string,
  options: {
    method?: string;
    headers?: http.OutgoingHttpHeaders;
    body?: Buffer | Buffer[] | Iterable<Buffer>;
    onResponse?: (res: http.IncomingMessage) => void;
    /** Default: none, i.e. `Connection: close`. */
    agent?: http.Agent;
  } = {},
): Promise<Proxied> {
  const proxy = new URL(proxyUrl);
  const req = http.request({
    host: proxy.hostname,
    port: proxy.port,
    method: options.method ?? 'GET',
    path: targetUrl,
    headers: options.headers,
    agent: options.agent ?? false,
  });
  let requestError: string | undefined;
  req.on('error', (e: NodeJS.ErrnoException) => {
    requestError = e.code ?? e.message; // a cut-off shows as an incomplete response
  });
  const responded = once(req, 'response') as Promise<[http.IncomingMessage]>;
  if (options.body && !Buffer.isBuffer(options.body)) {
    for (const piece of options.body)
      if (!req.write(piece)) await once(req, 'drain');
    req.end();
  } else req.end(options.body);
  const [res] = await responded;
  options.onResponse?.(res);
  const parts: Buffer[] = [];
  res.on('data', (d: Buffer) => parts.push(d));
  res.on('error', () => undefined); // a cut-off: `complete` stays false
  await new Promise((resolve) => res.once('close', resolve));
  if (!req.closed) await new Promise((resolve) => req.once('close', resolve));
  return {
    status: res.statusCode ?? 0,
    rawHeaders: res.rawHeaders,
    body: Buffer.concat(parts),
    complete: res.complete,
    requestError,
  };
}

/** Every value of header `name` (lower-case) in a raw header list. */
export function header(raw: string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < raw.length; i += 2)
    if (raw[i].toLowerCase() === name) values.push(raw[i + 1]);
  return values;
}

/** The `{error, message}` body of an error answer. */
export function errorOf(p: Proxied): { error: string; message: string } {
  return JSON.parse(p.body.toString()) as { error: string; message: string };
}

/** Resolves once `check` holds, polling; rejects after `ms`. */
export async function eventually(
  check: () => boolean,
  ms = 5000,
): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
