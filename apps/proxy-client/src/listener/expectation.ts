import type { IncomingMessage } from 'node:http';
import { ErrorCode, ProtocolError } from '@app/protocol';

/**
 * The answer to an `Expect` other than `100-continue`, which Node hands to
 * the listener's `checkExpectation` handler instead of answering a bare
 * 417 itself: the same JSON as every other refusal.
 */
export function expectationFailed(
  req: Pick<IncomingMessage, 'headers'>,
): ProtocolError {
  const value = String(req.headers.expect ?? '');
  return new ProtocolError(
    417,
    ErrorCode.BadProxyRequest,
    `Expect: ${JSON.stringify(value.slice(0, 100))} is not supported: this proxy understands only Expect: 100-continue; send the request without it.`,
  );
}
