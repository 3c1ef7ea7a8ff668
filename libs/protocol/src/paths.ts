/** Endpoints of proxy-server, relative to API_GATEWAY_URL (which may carry a stage path). */
export const ProxyPath = {
  Connection: '/proxy/connection',
  Chunk: '/proxy/chunk',
  Response: '/proxy/response',
  /** One call: connection JSON plus the first request chunk (docs/PROTOCOL.md). */
  Exchange: '/proxy/exchange',
} as const;
