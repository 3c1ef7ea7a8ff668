import net, { type LookupFunction } from 'node:net';
import { ErrorCode, ProtocolError } from '@app/protocol';
import { errorCodeOf, targetFailure } from '../target/target-errors.js';

/** Where a tunnel leads: the host as `net.connect` takes it (no brackets), and how logs show it. */
export interface TunnelTarget {
  host: string;
  port: number;
  /** `host:port`, IPv6 in brackets. */
  display: string;
}

/** The target of `target_host` (IPv6 in brackets) and `port`. */
export function tunnelTarget(targetHost: string, port: number): TunnelTarget {
  const host = targetHost.replace(/^\[(.*)\]$/, '$1');
  return {
    host,
    port,
    display: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`,
  };
}

/** Codes that mean the target was too slow rather than absent. */
const TIMEOUT_CODES = new Set(['ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT']);

/**
 * Maps a failure of a tunnel's TCP connection to the protocol's answer:
 * 504 `target_timeout` when connecting took too long, 502
 * `target_unreachable` naming the cause (refused, DNS, reset…) otherwise.
 * `after` says at which stage it failed, for the message.
 */
export function tunnelFailure(
  error: unknown,
  target: TunnelTarget,
  connectTimeoutMs: number,
  after?: string,
): ProtocolError {
  const code = errorCodeOf(error);
  if (code !== undefined && TIMEOUT_CODES.has(code)) {
    return connectTimeout(target, connectTimeoutMs, error);
  }
  const mapped = targetFailure(error, target.display, connectTimeoutMs);
  if (mapped instanceof ProtocolError) {
    if (!after) return mapped;
    return new ProtocolError(
      mapped.status,
      mapped.code,
      mapped.message.replace(
        `Target ${target.display} failed:`,
        `Target ${target.display} failed ${after}:`,
      ),
      { cause: error },
    );
  }
  // Not a network error code: still the target's side of the tunnel that
  // broke, and nothing the client can do but open a new one.
  const detail = error instanceof Error ? error.message : String(error);
  return new ProtocolError(
    502,
    ErrorCode.TargetUnreachable,
    `Target ${target.display} failed${after ? ` ${after}` : ''}: ${detail}.`,
    { cause: error },
  );
}

function connectTimeout(
  target: TunnelTarget,
  timeoutMs: number,
  cause?: unknown,
): ProtocolError {
  return new ProtocolError(
    504,
    ErrorCode.TargetTimeout,
    `Target ${target.display} failed: connecting took longer than TUNNEL_CONNECT_TIMEOUT_MS (${timeoutMs} ms).`,
    { cause },
  );
}

/** The error listener a connected socket carries until a tunnel adopts it. */
export function parkedError(): void {
  // Recorded by the stream itself (`socket.errored`); see connectTarget.
}

export interface ConnectOptions {
  /** TUNNEL_CONNECT_TIMEOUT_MS: DNS lookup plus TCP handshake. */
  timeoutMs: number;
  /** Aborts the attempt (the server shuts down). */
  signal?: AbortSignal;
  /** DNS lookup to use instead of the system's (tests make one that never answers). */
  lookup?: LookupFunction;
}

/**
 * Opens the TCP connection of a tunnel and resolves once it is established,
 * so that the client answers `200 Connection Established` only for a
 * connection that exists.
 *
 * `allowHalfOpen`: when the target sends FIN, our side stays writable, so
 * the application can still finish sending (TCP half-close). `noDelay`: a
 * tunnel carries interactive traffic (TLS handshakes, small requests);
 * Nagle's delay would cost a round trip on every small write.
 *
 * Rejects with 502 `target_unreachable` (refused, DNS, unreachable) or 504
 * `target_timeout` after `timeoutMs`.
 */
export function connectTarget(
  target: TunnelTarget,
  options: ConnectOptions,
): Promise<net.Socket> {
  return new Promise<net.Socket>((resolve, reject) => {
    const socket = net.connect({
      host: target.host,
      port: target.port,
      allowHalfOpen: true,
      noDelay: true,
      ...(options.lookup ? { lookup: options.lookup } : {}),
    });
    const fail = (error: ProtocolError) => {
      finish();
      socket.destroy();
      reject(error);
    };
    const onConnect = () => {
      finish();
      // Until the tunnel takes the socket over (a tick later), an error must
      // not go unhandled; the tunnel finds it in `socket.errored`.
      socket.on('error', parkedError);
      resolve(socket);
    };
    const onError = (error: Error) =>
      fail(tunnelFailure(error, target, options.timeoutMs));
    const onAbort = () =>
      fail(
        new ProtocolError(
          503,
          ErrorCode.UpstreamUnavailable,
          `proxy-server is shutting down; the tunnel to ${target.display} was not opened: try again.`,
        ),
      );
    const timer = setTimeout(
      () => fail(connectTimeout(target, options.timeoutMs)),
      options.timeoutMs,
    );
    const finish = () => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('error', onError);
      options.signal?.removeEventListener('abort', onAbort);
    };
    socket.once('connect', onConnect);
    socket.once('error', onError);
    if (options.signal?.aborted) onAbort();
    else options.signal?.addEventListener('abort', onAbort, { once: true });
  });
}
