/**
 * The refusals AWS gives for a request whose SigV4 authentication fails,
 * with the status, message and `x-amzn-ErrorType` AWS uses, so that a
 * client tested against chunkgate sees what it will see in AWS. Pure data.
 */
export interface SigV4Refusal {
  status: number;
  message: string;
  /** Value of `x-amzn-ErrorType`. */
  errorType?: string;
}

/** AWS's words for a signature that does not verify; clients match on them. */
export const SIGNATURE_MISMATCH_MESSAGE =
  'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.';

export const SigV4Refusals = {
  /** No `Authorization` header at all. */
  missingAuthenticationToken: (): SigV4Refusal => ({
    status: 403,
    message: 'Missing Authentication Token',
    errorType: 'MissingAuthenticationTokenException',
  }),
  /** The Authorization header is malformed or lacks a part. */
  incompleteSignature: (message: string): SigV4Refusal => ({
    status: 403,
    message,
    errorType: 'IncompleteSignatureException',
  }),
  /** Signature, scope or date wrong. */
  invalidSignature: (
    message: string = SIGNATURE_MISMATCH_MESSAGE,
  ): SigV4Refusal => ({
    status: 403,
    message,
    errorType: 'InvalidSignatureException',
  }),
  /** The access key id is not one the verifier knows. */
  unrecognizedClient: (): SigV4Refusal => ({
    status: 403,
    message: 'The security token included in the request is invalid.',
    errorType: 'UnrecognizedClientException',
  }),
} as const;
