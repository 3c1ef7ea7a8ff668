/**
 * The answers API Gateway itself gives (its "gateway responses"), with the
 * status, `{"message": ...}` body and `x-amzn-ErrorType` header AWS uses, so
 * that clients tested against the stand-in see exactly what they will see
 * in AWS. Pure data: no I/O, no framework types. The SigV4 refusals are
 * the verifier's own (`@app/sigv4`), shared with proxy-server.
 */
import { SigV4Refusals } from '@app/sigv4';

export interface GatewayResponse {
  status: number;
  message: string;
  /** Value of `x-amzn-ErrorType`, where AWS sends one. */
  errorType?: string;
}

export { SIGNATURE_MISMATCH_MESSAGE } from '@app/sigv4';

export const GatewayResponses = {
  /** No `Authorization` header at all. */
  missingAuthenticationToken: SigV4Refusals.missingAuthenticationToken,
  /**
   * A path outside the configured stage. AWS answers these with the same
   * message (it does not reveal which paths exist); the stand-in uses 404
   * so that a wrong API_GATEWAY_URL is told apart from a signing problem.
   */
  unknownPath: (): GatewayResponse => ({
    status: 404,
    message: 'Missing Authentication Token',
    errorType: 'MissingAuthenticationTokenException',
  }),
  /** The Authorization header is malformed or lacks a part. */
  incompleteSignature: SigV4Refusals.incompleteSignature,
  /** Signature, scope or date wrong. */
  invalidSignature: SigV4Refusals.invalidSignature,
  /** The access key id is not one the gateway knows. */
  unrecognizedClient: SigV4Refusals.unrecognizedClient,
  requestTooLarge: (): GatewayResponse => ({
    status: 413,
    message: 'Request Entity Too Large',
  }),
  /** Throttled (API Gateway's THROTTLED response: account, stage or usage-plan limits). */
  tooManyRequests: (): GatewayResponse => ({
    status: 429,
    message: 'Too Many Requests',
    errorType: 'TooManyRequestsException',
  }),
  /** The integration failed in a way the gateway cannot describe (as for a malformed Lambda answer). */
  integrationFailure: (): GatewayResponse => ({
    status: 502,
    message: 'Internal server error',
    errorType: 'InternalServerErrorException',
  }),
  /** The gateway cannot take the call right now. */
  serviceUnavailable: (): GatewayResponse => ({
    status: 503,
    message: 'Service Unavailable',
    errorType: 'ServiceUnavailableException',
  }),
  /** The integration (upstream) did not answer in time. */
  endpointTimeout: (): GatewayResponse => ({
    status: 504,
    message: 'Endpoint request timed out',
  }),
  /** The integration could not be reached; `code` is the socket error (ECONNREFUSED, ...). */
  upstreamUnreachable: (code: string): GatewayResponse => ({
    status: 502,
    message: `Bad Gateway: upstream unreachable (${code})`,
  }),
  /** A bug in the stand-in itself. */
  internalError: (): GatewayResponse => ({
    status: 500,
    message: 'Internal server error',
  }),
} as const;
