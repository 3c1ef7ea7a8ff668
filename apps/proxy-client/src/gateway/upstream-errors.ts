import {
  asErrorBody,
  ErrorCode,
  ProtocolError,
  type ErrorBody,
} from '@app/protocol';
import {
  GatewayAnswerTooLargeError,
  GatewayCredentialsError,
  GatewayUnreachableError,
  type GatewayAnswer,
} from './gateway-client.js';

/**
 * Error codes about the protocol between client and server, which the
 * application cannot act on: reported as 502 upstream_unavailable with the
 * server's words. Every other chunkgate error (about the target or the
 * application's own request) reaches the application as the server said it.
 */
const PROTOCOL_INTERNAL = new Set<string>([
  ErrorCode.ConnectionNotFound,
  ErrorCode.ConnectionExists,
  ErrorCode.ChunkConflict,
  ErrorCode.SizeMismatch,
  ErrorCode.RequestComplete,
  ErrorCode.Internal,
]);

/** What a failed call was, for messages: `POST https://…/prod/proxy/chunk`. */
export interface CallDescription {
  method: string;
  url: string;
  /** Bytes of body the call carried (a chunk upload). */
  bodyBytes?: number;
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** The gateway's own message (`{"message": …}` in API Gateway), or the start of the body. */
function gatewayMessage(body: Buffer): string {
  const json = parseJson(body) as { message?: unknown; Message?: unknown };
  const message = json?.message ?? json?.Message;
  if (typeof message === 'string') return message;
  const text = body.toString('utf8').replace(/\s+/g, ' ').trim();
  return text ? text.slice(0, 200) : 'no message';
}

/**
 * Turns a gateway answer that is not the one hoped for into the error the
 * application sees. One place for the whole mapping, so every path of the
 * relay reports a failure the same way.
 */
export function answerError(
  answer: GatewayAnswer,
  call: CallDescription,
): ProtocolError {
  const what = `${call.method} ${call.url}`;
  const chunkgate: ErrorBody | undefined = asErrorBody(parseJson(answer.body));
  if (chunkgate) {
    if (chunkgate.error === ErrorCode.ChunkTooLarge) {
      return new ProtocolError(
        502,
        ErrorCode.ChunkTooLarge,
        `proxy-server refused a chunk as too large (${chunkgate.message}): lower CHUNK_SIZE below its MAX_CHUNK_SIZE.`,
      );
    }
    if (PROTOCOL_INTERNAL.has(chunkgate.error) || answer.status < 400) {
      return new ProtocolError(
        502,
        ErrorCode.UpstreamUnavailable,
        `proxy-server refused ${what} (${answer.status} ${chunkgate.error}: ${chunkgate.message})`,
      );
    }
    return new ProtocolError(answer.status, chunkgate.error, chunkgate.message);
  }

  const message = gatewayMessage(answer.body);
  const tries = `${answer.attempts} attempt${answer.attempts === 1 ? '' : 's'}`;
  switch (answer.status) {
    case 401:
    case 403:
      return new ProtocolError(
        502,
        ErrorCode.GatewayAuthFailed,
        `The API Gateway refused the request signature (${answer.status}: ${message}): check AWS credentials, AWS_REGION and API_GATEWAY_URL`,
      );
    case 413:
      return new ProtocolError(
        502,
        ErrorCode.ChunkTooLarge,
        `The API Gateway refused a chunk of ${call.bodyBytes ?? '?'} bytes as larger than it allows (413: ${message}): lower CHUNK_SIZE below the gateway's payload limit`,
      );
    case 504:
      return new ProtocolError(
        504,
        ErrorCode.GatewayTimeout,
        `The API Gateway timed out on ${what} (504: ${message}) through ${tries}: proxy-server did not answer in time`,
      );
    case 404:
      return new ProtocolError(
        502,
        ErrorCode.UpstreamUnavailable,
        `The API Gateway has no ${what} (404: ${message}): check API_GATEWAY_URL, including its stage path`,
      );
    default:
      return new ProtocolError(
        502,
        ErrorCode.UpstreamUnavailable,
        `The API Gateway answered ${answer.status} (${message}) to ${what} through ${tries}: proxy-server may be down or overloaded`,
      );
  }
}

/**
 * Turns an error thrown by a gateway call into the error the application
 * sees. Anything unexpected is rethrown: it is a bug, reported as such.
 */
export function callFailure(error: unknown): ProtocolError {
  if (error instanceof ProtocolError) return error;
  if (error instanceof GatewayUnreachableError) {
    return new ProtocolError(
      502,
      ErrorCode.UpstreamUnavailable,
      `Could not reach the API Gateway: ${error.message}. Check API_GATEWAY_URL and that the gateway and proxy-server are running.`,
      { cause: error },
    );
  }
  if (error instanceof GatewayCredentialsError) {
    return new ProtocolError(
      502,
      ErrorCode.GatewayAuthFailed,
      `${error.message}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, for the API Gateway's IAM authorization.`,
      { cause: error },
    );
  }
  if (error instanceof GatewayAnswerTooLargeError) {
    return new ProtocolError(
      502,
      ErrorCode.UpstreamUnavailable,
      error.message,
      { cause: error },
    );
  }
  throw error;
}
