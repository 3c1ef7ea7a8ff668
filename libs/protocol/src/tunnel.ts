import { IsInt, IsOptional, IsUUID, isUUID, Max, Min } from 'class-validator';
import { ErrorCode, ProtocolError } from './errors.js';
import { Header, type IncomingHeaders } from './headers.js';
import { MAX_CHUNK_SIZE } from './limits.js';
import { IsTargetHost } from './dto.js';

/*
 * CONNECT tunnels (docs/PROTOCOL.md, "Tunnels (CONNECT)"): the bytes of one
 * TCP connection carried over the gateway's request/response calls, TLS
 * staying end to end between the application and the target.
 */

/** Idle time (no byte either way) after which the server closes a tunnel. */
export const DEFAULT_TUNNEL_IDLE_TIMEOUT_MS = 5 * 60_000;
/** Long-poll bound of `GET /proxy/tunnel/receive`; short, so a silent tunnel costs few calls but stays well under 29 s. */
export const DEFAULT_TUNNEL_WAIT_MS = 20_000;
/** How long the server tries to open the TCP connection to the target; must fit one gateway call. */
export const DEFAULT_TUNNEL_CONNECT_TIMEOUT_MS = 10_000;
/** The ports CONNECT may reach unless CONNECT_ALLOWED_PORTS says otherwise: HTTPS only. */
export const DEFAULT_CONNECT_ALLOWED_PORTS = '443';

/** Body of `POST /proxy/tunnel`: where to open the TCP connection. */
export class OpenTunnelDto {
  /** Chosen by the client, so that opening, too, is safe to retry. */
  @IsUUID('all', { message: 'tunnel_id must be a UUID' })
  tunnel_id!: string;

  @IsTargetHost()
  target_host!: string;

  @IsInt({ message: 'port must be an integer from 1 to 65535' })
  @Min(1, { message: 'port must be an integer from 1 to 65535' })
  @Max(65535, { message: 'port must be an integer from 1 to 65535' })
  port!: number;

  /** Largest downstream segment the client wants (bytes); default the server's CHUNK_SIZE. */
  @IsOptional()
  @IsInt()
  @Min(1024)
  @Max(MAX_CHUNK_SIZE)
  segment_size?: number;
}

/** Answer of `POST /proxy/tunnel` (201): the TCP connection to the target is open. */
export interface TunnelOpened {
  tunnel_id: string;
  /** Time without a byte either way after which the server closes the tunnel. */
  idle_timeout_ms: number;
  /** Long-poll bound of `GET /proxy/tunnel/receive`. */
  wait_ms: number;
}

/** Answer of `POST /proxy/tunnel/send` (200). */
export interface SegmentAccepted {
  tunnel_id: string;
  sequence: number;
  /** Upstream bytes accepted so far (all segments up to this one). */
  received_bytes: number;
}

function single(headers: IncomingHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Reads and checks `X-Tunnel-ID`; a missing or malformed id is a 400. */
export function readTunnelId(headers: IncomingHeaders): string {
  const id = single(headers, Header.TunnelId)?.trim();
  if (!id) {
    throw new ProtocolError(
      400,
      ErrorCode.InvalidRequest,
      'Missing X-Tunnel-ID header: send the tunnel_id of POST /proxy/tunnel.',
    );
  }
  if (!isUUID(id)) {
    throw new ProtocolError(
      400,
      ErrorCode.InvalidRequest,
      'X-Tunnel-ID must be a UUID.',
    );
  }
  return id.toLowerCase();
}

/** Reads the required `X-Sequence`: a non-negative decimal integer; anything else is a 400. */
export function readSequence(headers: IncomingHeaders): number {
  const raw = single(headers, Header.Sequence)?.trim();
  if (raw === undefined || raw === '') {
    throw new ProtocolError(
      400,
      ErrorCode.InvalidRequest,
      'Missing X-Sequence header: send the 0-based number of the segment.',
    );
  }
  if (!/^\d{1,15}$/.test(raw)) {
    throw new ProtocolError(
      400,
      ErrorCode.InvalidRequest,
      `X-Sequence must be a non-negative integer, got ${JSON.stringify(raw.slice(0, 40))}.`,
    );
  }
  return Number(raw);
}
