/** Endpoints of proxy-server, relative to API_GATEWAY_URL (which may carry a stage path). */
export const ProxyPath = {
  Connection: '/proxy/connection',
  Chunk: '/proxy/chunk',
  Response: '/proxy/response',
  /** One call: connection JSON plus the first request chunk (docs/PROTOCOL.md). */
  Exchange: '/proxy/exchange',
  /** CONNECT tunnels: open (POST) and close (DELETE). */
  Tunnel: '/proxy/tunnel',
  /** Upstream bytes of a tunnel, one segment per call. */
  TunnelSend: '/proxy/tunnel/send',
  /** Downstream bytes of a tunnel, long-polled. */
  TunnelReceive: '/proxy/tunnel/receive',
} as const;
