/**
 * The time source for connection idle times. Injected (token {@link CLOCK})
 * so that the expiry of connections can be tested by advancing a clock
 * instead of waiting.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export const CLOCK = Symbol('Clock');

export const systemClock: Clock = { now: () => Date.now() };
