import { randomUUID } from 'node:crypto';
import type { LoggerService } from '@nestjs/common';
import { ProtocolError } from '@app/protocol';
import { sendErrorAnswer } from '../../common/app-answers.js';
import { parseConnectAuthority } from '../../tunnel/connect-authority.js';
import type { TunnelApi } from '../../tunnel/tunnel-api.js';
import { TunnelSession } from '../../tunnel/tunnel-session.js';
import {
  ApplicationGoneError,
  newStats,
  type ExchangeIo,
  type ExchangeStats,
} from '../exchange.js';
import type { ConnectProxyRequest } from './prepare-proxy-request.js';

export interface ForwardConnectDeps {
  tunnels: TunnelApi;
  /** CHUNK_SIZE: the most one upstream call carries, and the downstream segment size asked for. */
  chunkSize: number;
  logger: LoggerService;
  /** Aborts the tunnel with its reason (the app is shutting down). */
  shutdown?: AbortSignal;
  newTunnelId?: () => string;
}

/** What the application reads once its tunnel is open: from here on, the target's bytes. */
const ESTABLISHED = 'HTTP/1.1 200 Connection Established\r\n\r\n';

/**
 * Strategy for CONNECT: an HTTPS (or any TCP) tunnel carried over the
 * gateway's request/response calls. TLS stays end to end: the proxy only
 * ever sees ciphertext, and no certificate is involved here.
 *
 * ```
 * app                    proxy-client                        gateway → proxy-server → target
 *  │ CONNECT host:443 ──▶ │ POST /proxy/tunnel ──────────────▶│ TCP connect (port allowed?)
 *  │ ◀── 200 ──────────── │ ◀── 201 once connected ───────────│
 *  │ ◀── 403/502/504 ──── │ ◀── refused: JSON error, no tunnel │
 *  │ bytes ─────────────▶ │ POST /proxy/tunnel/send #n ───────▶│ written once, in order
 *  │ ◀── bytes ────────── │ ◀── GET /proxy/tunnel/receive #m ──│ long-poll
 *  │ FIN ⇄ FIN            │ X-Tunnel-Close / X-Tunnel-Closed   │ half-close both ways
 *  │                      │ DELETE /proxy/tunnel (always, best effort)
 * ```
 *
 * The `200` is sent only once the server holds an open connection to the
 * target, so an application never gets a tunnel that is dead on arrival:
 * a refused port, a failed DNS lookup or a timeout reaches it as the
 * status and JSON error of the answer to its CONNECT.
 */
export async function forwardConnect(
  request: ConnectProxyRequest,
  io: ExchangeIo,
  deps: ForwardConnectDeps,
): Promise<ExchangeStats> {
  const target = parseConnectAuthority(request.authority);
  const tunnelId = (deps.newTunnelId ?? randomUUID)();
  const socket = io.req.socket;
  const stats = newStats();

  // Step 1: open the tunnel; the application waits for the answer.
  const opening = new AbortController();
  const onGone = () => opening.abort(new ApplicationGoneError());
  const onShutdown = () => opening.abort(deps.shutdown?.reason as Error);
  socket.once('close', onGone);
  deps.shutdown?.addEventListener('abort', onShutdown, { once: true });
  try {
    await deps.tunnels.open(
      {
        tunnel_id: tunnelId,
        target_host: target.targetHost,
        port: target.port,
        segment_size: deps.chunkSize,
      },
      opening.signal,
    );
  } catch (error) {
    const reason: unknown = opening.signal.aborted
      ? opening.signal.reason
      : error;
    if (reason instanceof ApplicationGoneError) {
      stats.status = 'gone';
    } else if (reason instanceof ProtocolError) {
      stats.status = reason.status;
      await sendErrorAnswer(io.req, io.res, reason);
    } else {
      throw reason;
    }
    // The server may have opened it all the same (an answer lost on the way).
    await closeTunnel(tunnelId, deps);
    return stats;
  } finally {
    socket.off('close', onGone);
    deps.shutdown?.removeEventListener('abort', onShutdown);
  }

  // Step 2: answer 200 on the raw socket and carry bytes until both sides finished.
  io.res.detachSocket(socket);
  socket.setNoDelay(true);
  socket.write(ESTABLISHED);
  stats.status = 200;
  const session = new TunnelSession(tunnelId, socket, {
    api: deps.tunnels,
    chunkSize: deps.chunkSize,
  });
  const onShutdownLater = () => session.abort(deps.shutdown?.reason as Error);
  deps.shutdown?.addEventListener('abort', onShutdownLater, { once: true });
  if (deps.shutdown?.aborted) onShutdownLater();
  try {
    await session.run();
  } catch (error) {
    if (error instanceof ApplicationGoneError) {
      stats.status = 'gone';
    } else {
      stats.status = 'cut';
      deps.logger.warn?.(
        `CONNECT ${target.display}: tunnel cut: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  } finally {
    deps.shutdown?.removeEventListener('abort', onShutdownLater);
    stats.bytesUp = session.traffic.bytesUp;
    stats.bytesDown = session.traffic.bytesDown;
    stats.chunksUp = session.traffic.segmentsUp;
    stats.chunksDown = session.traffic.segmentsDown;
    // Step 3: free the server's side (its idle sweep would, later).
    await closeTunnel(tunnelId, deps);
  }
  return stats;
}

/** Frees the server's tunnel; a failure only costs it its idle timeout, so it is logged at debug. */
async function closeTunnel(
  tunnelId: string,
  deps: ForwardConnectDeps,
): Promise<void> {
  try {
    await deps.tunnels.close(tunnelId);
  } catch (error) {
    deps.logger.debug?.(
      `Closing tunnel ${tunnelId} failed (it expires on the server): ${(error as Error).message}`,
    );
  }
}
