import type { ServerResponse } from 'node:http';
import type { GatewayResponse } from './gateway-responses.js';

/**
 * Writes one of API Gateway's own answers: `{"message": ...}` as JSON, with
 * `x-amzn-ErrorType` where AWS sends it. `close` adds `Connection: close`
 * for the cases where the request body was not (fully) read, so the
 * connection cannot carry another request.
 */
export function sendGatewayResponse(
  res: ServerResponse,
  response: GatewayResponse,
  options: { close?: boolean } = {},
): void {
  const body = JSON.stringify({ message: response.message });
  res.statusCode = response.status;
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  if (response.errorType) res.setHeader('x-amzn-ErrorType', response.errorType);
  if (options.close) res.setHeader('Connection', 'close');
  res.end(body);
}
