import {
  CreateConnectionDto,
  ErrorCode,
  MiB,
  ProtocolError,
  validateDto,
} from '@app/protocol';

/** The connection JSON carries headers, not bodies: 1 MiB is generous. */
export const MAX_CONNECTION_JSON_BYTES = MiB;

/** The 413 for a connection JSON over {@link MAX_CONNECTION_JSON_BYTES}. */
export function connectionJsonTooLarge(bytes: number): ProtocolError {
  return new ProtocolError(
    413,
    ErrorCode.BodyTooLarge,
    `The connection JSON is ${bytes} bytes; at most ${MAX_CONNECTION_JSON_BYTES} are accepted.`,
  );
}

/**
 * Parses the connection JSON: malformed JSON, or anything but an object, is
 * a 400 that says so. Shared by `POST /proxy/connection` and
 * `POST /proxy/exchange`, so that both refuse the same heads the same way.
 */
export function parseConnectionJson(raw: Buffer): object {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch (error) {
    throw new ProtocolError(
      400,
      ErrorCode.InvalidRequest,
      raw.length === 0
        ? 'The body is empty: send the connection as a JSON object.'
        : `The body is not valid JSON (${error instanceof Error ? error.message : String(error)}): send the connection as a JSON object.`,
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ProtocolError(
      400,
      ErrorCode.InvalidRequest,
      'The body must be a JSON object describing the connection.',
    );
  }
  return parsed;
}

/**
 * The connection JSON parsed and validated against CreateConnectionDto with
 * the options of the app's global ValidationPipe (whitelist, same messages),
 * for routes whose body is more than the JSON.
 */
export function readConnectionHead(raw: Buffer): CreateConnectionDto {
  return validateDto(CreateConnectionDto, parseConnectionJson(raw));
}
