import {
  ErrorCode,
  Header,
  ProtocolError,
  ProxyPath,
  type OpenTunnelDto,
} from '@app/protocol';
import type {
  GatewayAnswer,
  GatewayCall,
  GatewayClient,
} from '../gateway/gateway-client.js';
import { answerError, callFailure } from '../gateway/upstream-errors.js';

/** One downstream segment as the server served it. */
export interface DownstreamSegment {
  sequence: number;
  data: Buffer;
  /** The target finished sending; these are its last bytes. */
  closed: boolean;
}

/** The server's long-poll ended without bytes; ask for the same segment again. */
export const NOTHING_YET = Symbol('nothing-yet');

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * The four tunnel calls of docs/PROTOCOL.md ("Tunnels (CONNECT)"), over
 * the same signed, retrying gateway client as every other call. Each call
 * is safe to retry (the tunnel id is the client's, segments are numbered),
 * so the gateway client's retries apply unchanged; here is what an answer
 * means.
 */
export class TunnelApi {
  constructor(private readonly gateway: GatewayClient) {}

  /** `POST /proxy/tunnel`: resolves once the server holds an open TCP connection to the target. */
  async open(tunnel: OpenTunnelDto, signal?: AbortSignal): Promise<void> {
    const answer = await this.send({
      method: 'POST',
      path: ProxyPath.Tunnel,
      headers: { 'content-type': 'application/json' },
      body: Buffer.from(JSON.stringify(tunnel), 'utf8'),
      signal,
    });
    if (answer.status !== 201) {
      throw this.failure(answer, ProxyPath.Tunnel, 'POST');
    }
  }

  /** `POST /proxy/tunnel/send`: upstream segment `sequence`, FIN after it if `close`. */
  async sendSegment(
    tunnelId: string,
    sequence: number,
    data: Buffer,
    close: boolean,
    signal?: AbortSignal,
  ): Promise<void> {
    const headers: Record<string, string> = {
      'content-type': 'application/octet-stream',
      [Header.TunnelId]: tunnelId,
      [Header.Sequence]: String(sequence),
    };
    if (close) headers[Header.TunnelClose] = 'true';
    const answer = await this.send({
      method: 'POST',
      path: ProxyPath.TunnelSend,
      headers,
      body: data,
      signal,
    });
    if (answer.status !== 200) {
      throw this.failure(answer, ProxyPath.TunnelSend, 'POST', data.length);
    }
  }

  /** `GET /proxy/tunnel/receive`: downstream segment `sequence`, or {@link NOTHING_YET} after the long-poll. */
  async receiveSegment(
    tunnelId: string,
    sequence: number,
    signal?: AbortSignal,
  ): Promise<DownstreamSegment | typeof NOTHING_YET> {
    const answer = await this.send({
      method: 'GET',
      path: ProxyPath.TunnelReceive,
      headers: {
        [Header.TunnelId]: tunnelId,
        [Header.Sequence]: String(sequence),
      },
      signal,
    });
    if (answer.status === 204) return NOTHING_YET;
    if (answer.status !== 200) {
      throw this.failure(answer, ProxyPath.TunnelReceive, 'GET');
    }
    const served = single(answer.headers[Header.Sequence]);
    if (served !== undefined && Number(served) !== sequence) {
      throw new ProtocolError(
        502,
        ErrorCode.UpstreamUnavailable,
        `Asked for tunnel segment ${sequence}, got segment ${served}: is API_GATEWAY_URL pointing at a chunkgate proxy-server?`,
      );
    }
    return {
      sequence,
      data: answer.body,
      closed:
        single(answer.headers[Header.TunnelClosed])?.trim().toLowerCase() ===
        'true',
    };
  }

  /** `DELETE /proxy/tunnel`. A 404 means it is gone already (expired, or a lost first attempt freed it). */
  async close(tunnelId: string): Promise<void> {
    const answer = await this.send({
      method: 'DELETE',
      path: ProxyPath.Tunnel,
      headers: { [Header.TunnelId]: tunnelId },
    });
    if (answer.status === 204 || answer.status === 404) return;
    throw this.failure(answer, ProxyPath.Tunnel, 'DELETE');
  }

  private async send(call: GatewayCall): Promise<GatewayAnswer> {
    try {
      return await this.gateway.call(call);
    } catch (error) {
      if (call.signal?.aborted && error === call.signal.reason) throw error;
      throw callFailure(error);
    }
  }

  private failure(
    answer: GatewayAnswer,
    path: string,
    method: string,
    bodyBytes?: number,
  ): ProtocolError {
    return answerError(answer, {
      method,
      url: this.gateway.urlOf(path),
      bodyBytes,
    });
  }
}
