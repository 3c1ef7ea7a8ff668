/**
 * The answers API Gateway itself gives (its "gateway responses"), with the
 * status, `{"message": ...}` body and `x-amzn-ErrorType` header AWS uses, so
 * that clients tested against the stand-in see exactly what they will see
 * in AWS. Pure data: no I/O, no framework types.
 */
export interface GatewayResponse {
  status: number;
  message: string;
  /** Value of `x-amzn-ErrorType`, where AWS sends one. */
  errorType?: string;
}

/** AWS's words for a signature that does not verify; clients match on them. */
export const SIGNATURE_MISMATCH_MESSAGE =
  'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.';

export const GatewayResponses = {
  /** No `Authorization` header at all. */
  missingAuthenticationToken: (): GatewayResponse => ({
    status: 403,
    message: 'Missing Authentication Token',
    errorType: 'MissingAuthenticationTokenException',
  }),
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
  incompleteSignature: (message: string): GatewayResponse => ({
    status: 403,
    message,
    errorType: 'IncompleteSignatureException',
  }),
  /** Signature, scope or date wrong. */
  invalidSignature: (
    message: string = SIGNATURE_MISMATCH_MESSAGE,
  ): GatewayResponse => ({
    status: 403,
    message,
    errorType: 'InvalidSignatureException',
  }),
  /** The access key id is not one the gateway knows. */
  unrecognizedClient: (): GatewayResponse => ({
    status: 403,
    message: 'The security token included in the request is invalid.',
    errorType: 'UnrecognizedClientException',
  }),
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
