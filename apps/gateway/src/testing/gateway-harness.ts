import type { AddressInfo } from 'node:net';
import { Sha256 } from '@aws-crypto/sha256-js';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { request } from 'undici';
import {
  LOCAL_DEV_ACCESS_KEY_ID as AKID,
  LOCAL_DEV_SECRET_ACCESS_KEY as SECRET,
} from '@app/protocol';
import { createGatewayApp } from '../app.js';

/*
 * What the gateway's specs share: a real gateway on port 0 and a client
 * that signs as the AWS SDK does.
 */

/** Starts a gateway with the given environment on port 0. */
export async function startGateway(
  env: Record<string, string>,
): Promise<{ app: NestExpressApplication; url: string; port: number }> {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    const app = await createGatewayApp({ logger: false });
    await app.listen(0, '127.0.0.1');
    const { port } = app.getHttpServer().address() as AddressInfo;
    return { app, url: `http://127.0.0.1:${port}`, port };
  } finally {
    process.env = saved;
  }
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** Signs with smithy's SignatureV4 (as the AWS SDK does) and sends with undici. */
export async function signedCall(
  base: string,
  method: string,
  path: string,
  options: {
    query?: Record<string, string>;
    body?: Buffer;
    headers?: Record<string, string>;
    secret?: string;
    region?: string;
    accessKeyId?: string;
    sessionToken?: string;
    signal?: AbortSignal;
  } = {},
): Promise<Answer> {
  const url = new URL(base);
  const signer = new SignatureV4({
    service: 'execute-api',
    region: options.region ?? 'us-east-1',
    sha256: Sha256,
    credentials: {
      accessKeyId: options.accessKeyId ?? AKID,
      secretAccessKey: options.secret ?? SECRET,
      sessionToken: options.sessionToken,
    },
  });
  const signed = await signer.sign(
    new HttpRequest({
      method,
      protocol: 'http:',
      hostname: url.hostname,
      port: Number(url.port),
      path,
      query: options.query ?? {},
      headers: { host: url.host, ...options.headers },
      body: options.body,
    }),
  );
  const query = new URLSearchParams(options.query ?? {})
    .toString()
    .replace(/\+/g, '%20');
  const res = await request(`${base}${path}${query ? `?${query}` : ''}`, {
    method: method as 'GET',
    headers: signed.headers,
    body: options.body,
    signal: options.signal,
  });
  return {
    status: res.statusCode,
    headers: res.headers,
    body: Buffer.from(await res.body.arrayBuffer()),
  };
}
