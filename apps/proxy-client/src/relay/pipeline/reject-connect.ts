import { ErrorCode, ProtocolError } from '@app/protocol';
import { sendErrorAnswer } from '../../common/app-answers.js';
import { newStats, type ExchangeIo, type ExchangeStats } from '../exchange.js';
import type { ConnectProxyRequest } from './prepare-proxy-request.js';

/**
 * Strategy for CONNECT (HTTPS tunnels): not supported yet, answered clearly
 * instead of leaving the client to time out.
 *
 * ```
 * app ── CONNECT host:443 ──▶ proxy-client ── 501 not_implemented, close ──▶ app
 * ```
 *
 * (The roadmap carries tunnels over the same chunked calls, TLS end to end.)
 */
export async function rejectConnect(
  _request: ConnectProxyRequest,
  io: ExchangeIo,
): Promise<ExchangeStats> {
  await sendErrorAnswer(
    io.req,
    io.res,
    new ProtocolError(
      501,
      ErrorCode.NotImplemented,
      'HTTPS tunnels (CONNECT) are not supported yet; use http:// URLs',
    ),
  );
  return newStats(501);
}
