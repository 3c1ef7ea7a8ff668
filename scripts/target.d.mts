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
  hits(path: string): SeenRequest[];
  close(): Promise<void>;
}

export declare function startTarget(): Promise<Target>;
