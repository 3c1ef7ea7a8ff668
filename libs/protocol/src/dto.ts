import {
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  IsUUID,
  Matches,
  Max,
  MaxLength,
  Min,
  ValidateBy,
  type ValidationOptions,
} from 'class-validator';
import { MAX_CHUNK_SIZE } from './limits.js';
import type { HeaderPairs } from './hop-by-hop.js';

/** An HTTP token (RFC 9110 5.6.2): what a method or header name may contain. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** A header value: visible ASCII/obs-text, spaces and tabs; no CR, LF or NUL. */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** `headers` of the connection JSON: `{ name: value | [values] }`, names tokens, values single-line. */
function IsHeaderRecord(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isHeaderRecord',
      validator: {
        validate(value: unknown): boolean {
          if (
            typeof value !== 'object' ||
            value === null ||
            Array.isArray(value)
          )
            return false;
          return Object.entries(value as Record<string, unknown>).every(
            ([name, v]) => {
              if (!TOKEN.test(name)) return false;
              const values = Array.isArray(v) ? v : [v];
              return values.every(
                (x) => typeof x === 'string' && HEADER_VALUE.test(x),
              );
            },
          );
        },
        defaultMessage: () =>
          'headers must be an object of header names to a string or an array of strings, without line breaks',
      },
    },
    options,
  );
}

/**
 * `target_host` of the connection and tunnel JSON: a host name or IP address
 * (IPv6 in brackets), never with a port or anything a URL could smuggle in.
 */
export function IsTargetHost(): PropertyDecorator {
  return (target, key) => {
    IsString()(target, key);
    Matches(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)$/, {
      message:
        'target_host must be a host name or IP address (IPv6 in brackets), without a port',
    })(target, key);
    MaxLength(255)(target, key);
  };
}

/** Body of `POST /proxy/connection`: everything the server needs to make the target request. */
export class CreateConnectionDto {
  /** Chosen by the client so every call, including the first, is safe to retry. */
  @IsUUID('all', { message: 'connection_id must be a UUID' })
  connection_id!: string;

  @IsTargetHost()
  target_host!: string;

  @IsOptional()
  @IsInt({ message: 'port must be an integer' })
  @Min(1)
  @Max(65535)
  port?: number;

  @IsOptional()
  @IsIn(['http', 'https'], { message: 'scheme must be "http" or "https"' })
  scheme?: 'http' | 'https';

  @IsString()
  @Matches(TOKEN, {
    message: 'method must be an HTTP method token such as GET or POST',
  })
  @MaxLength(32)
  method!: string;

  /** Origin-form path with query: `/upload?x=1`. */
  @IsString()
  @Matches(/^\/[^\s]*$/, {
    message: 'path must start with "/" and contain no whitespace',
  })
  @MaxLength(65536)
  path!: string;

  @IsOptional()
  @IsHeaderRecord()
  headers?: Record<string, string | string[]>;

  /** Total request body size; absent or null when unknown (chunked upload). */
  @IsOptional()
  @IsInt({ message: 'body_size must be a whole number of bytes' })
  @Min(0, { message: 'body_size must not be negative' })
  body_size?: number | null;

  /** Size of the response chunks the client wants, at most MAX_CHUNK_SIZE. */
  @IsOptional()
  @IsInt()
  @Min(1024)
  @Max(MAX_CHUNK_SIZE)
  response_chunk_size?: number;

  /**
   * How many response chunks the client asks for ahead of the one it delivers
   * next (its download concurrency). Lets the server free chunks the client
   * can no longer need and bound what it buffers. Default 1.
   */
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(64)
  download_window?: number;
}

/** Answer of `POST /proxy/connection` (201). */
export interface ConnectionCreated {
  connection_id: string;
  /** Idle time after which the server forgets the connection. */
  ttl_ms: number;
}

/** Answer of `POST /proxy/chunk` (200). */
export interface ChunkAccepted {
  connection_id: string;
  chunk_index: number;
  /** Bytes of the request body received so far. */
  received_bytes: number;
  /** True once the final chunk and everything before it arrived: the target request is on its way. */
  complete: boolean;
}

/** Status line and headers of the target's response, carried by response chunk 0. */
export interface TargetHead {
  status: number;
  reason: string;
  headers: HeaderPairs;
}

/** Base64 of the JSON pairs, for the `X-Target-Headers` header. */
export function encodeHeaderPairs(pairs: HeaderPairs): string {
  return Buffer.from(JSON.stringify(pairs), 'utf8').toString('base64');
}

/** Inverse of {@link encodeHeaderPairs}; throws on anything that is not a list of string pairs. */
export function decodeHeaderPairs(encoded: string): HeaderPairs {
  const parsed: unknown = JSON.parse(
    Buffer.from(encoded, 'base64').toString('utf8'),
  );
  if (
    !Array.isArray(parsed) ||
    !parsed.every(
      (p) =>
        Array.isArray(p) &&
        p.length === 2 &&
        typeof p[0] === 'string' &&
        typeof p[1] === 'string',
    )
  ) {
    throw new Error(
      'X-Target-Headers is not a base64 JSON list of [name, value] pairs',
    );
  }
  return parsed as HeaderPairs;
}
