import { AsyncLocalStorage } from 'node:async_hooks';

/** Gateway calls made on behalf of one exchange: every attempt, retries included. */
export interface CallTally {
  calls: number;
}

const current = new AsyncLocalStorage<CallTally>();

/**
 * Runs `work` with a fresh tally that every gateway attempt made inside it
 * (however deep, across awaits) counts itself into: each one is a round
 * trip and counts against the gateway's quota, so the access log shows it
 * per exchange. An async context rather than a parameter, so that every
 * strategy is counted without threading a counter through each call.
 */
export function withCallTally<T>(
  work: (tally: CallTally) => Promise<T>,
): Promise<T> {
  const tally: CallTally = { calls: 0 };
  return current.run(tally, () => work(tally));
}

/** Counts one gateway attempt into the running exchange's tally, if any. */
export function countGatewayCall(): void {
  const tally = current.getStore();
  if (tally) tally.calls += 1;
}
