import type { ServerResponse } from 'node:http';

/** What the target saw of one request. */
export interface SeenRequest {
  method: string;
  url: string;
  rawHeaders: string[];
  bytes: number;
  sha256: string;
}

export declare function deterministicBytes(
  size: number,
  seed?: string,
): Generator<Buffer>;
export declare function sha256Of(chunks: Iterable<Buffer>): string;
export declare function sha256(data: Buffer | string): string;

export interface Target {
  port: number;
  url: string;
  seen: SeenRequest[];
  /** Responses of `GET /hang`, never answered. */
  hanging: ServerResponse[];
  /** Responses of `GET /held`: head and "first" sent, left to the test. */
  held: ServerResponse[];
  /** Bytes written so far by the latest `GET /bytes`, and whether it ended. */
  streamed: { written: number; finished: boolean };
  hits(path: string): SeenRequest[];
  close(): Promise<void>;
}

/** With `tls`, the same routes over HTTPS (`url` starts with https://). */
export declare function startTarget(options?: {
  tls?: { key: Buffer; cert: Buffer };
}): Promise<Target>;

export declare function makeCertificate(
  dir: string,
): Promise<{ key: Buffer; cert: Buffer; certFile: string }>;
