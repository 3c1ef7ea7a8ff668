import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';

/** What smithy hands a hash: a key or data as a string, an ArrayBuffer or a view of one. */
type SourceData = string | ArrayBuffer | ArrayBufferView;

function bytesOf(data: SourceData): string | Uint8Array {
  if (typeof data === 'string') return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * SHA-256 and HMAC-SHA-256 for smithy's `SignatureV4` on Node's native
 * crypto, as `@smithy/hash-node`'s `Hash` does (that package is not a
 * dependency here). The pure-JavaScript `@aws-crypto/sha256-js` cost a
 * millisecond and more per call: smithy hashes the canonical request and
 * derives (and, to find its cache entry, HMACs) the signing key on every
 * signature. The body itself is never hashed here: the gateway client passes
 * its hash in `x-amz-content-sha256`.
 */
export class NodeSha256 {
  private hash: Hash | Hmac;

  /** With a secret: HMAC-SHA-256 keyed by it; without: plain SHA-256. */
  constructor(private readonly secret?: SourceData) {
    this.hash = this.fresh();
  }

  update(data: Uint8Array | string): void {
    this.hash.update(data);
  }

  digest(): Promise<Uint8Array> {
    return Promise.resolve(this.hash.digest());
  }

  reset(): void {
    this.hash = this.fresh();
  }

  private fresh(): Hash | Hmac {
    return this.secret === undefined
      ? createHash('sha256')
      : createHmac('sha256', bytesOf(this.secret));
  }
}
