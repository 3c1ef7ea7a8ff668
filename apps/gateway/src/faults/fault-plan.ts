/**
 * What can go wrong with one call, as it does in front of a real API Gateway:
 *
 * - `reset-before`: the connection drops before the integration sees the call;
 * - `reset-after`: the integration handled the call but its answer is lost
 *   (the connection drops instead) — the case that tests idempotency;
 * - `429` / `502` / `503` / `504`: the gateway answers itself, throttling or
 *   reporting an integration hiccup, without forwarding;
 * - `latency`: the call is forwarded after a random extra delay.
 */
export const FAULT_KINDS = [
  'reset-before',
  'reset-after',
  '429',
  '502',
  '503',
  '504',
  'latency',
] as const;

export type FaultKind = (typeof FAULT_KINDS)[number];

export function isFaultKind(value: string): value is FaultKind {
  return (FAULT_KINDS as readonly string[]).includes(value);
}

/** One drawn fault; `latencyMs` only for `latency`. */
export type Fault =
  | { kind: Exclude<FaultKind, 'latency'> }
  | { kind: 'latency'; latencyMs: number };

export interface FaultPlanOptions {
  /** Probability (0..1) that a call is faulty. */
  rate: number;
  /** The kinds drawn from, each equally likely; must not be empty. */
  kinds: readonly FaultKind[];
  /** Upper bound of the `latency` fault's delay, drawn uniformly from 0 to it. */
  latencyMs: number;
  /** Makes the draws reproducible; `undefined` draws from Math.random. */
  seed?: string;
}

/**
 * mulberry32: a tiny 32-bit PRNG, uniform enough for picking faults and
 * fully determined by its seed (unlike Math.random, which cannot be seeded).
 */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a hash of a seed text, so any text (`"42"`, `"e2e-run"`) can seed mulberry32. */
export function seedNumber(seed: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(seed, 'utf8')) {
    hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  }
  return hash;
}

/**
 * Decides, call by call, whether and how a call goes wrong. Pure apart from
 * its generator state: the same seed gives the same sequence of draws.
 */
export class FaultPlan {
  private readonly random: () => number;

  constructor(private readonly options: FaultPlanOptions) {
    if (options.kinds.length === 0) {
      throw new Error('A fault plan needs at least one fault kind.');
    }
    this.random =
      options.seed === undefined
        ? Math.random
        : mulberry32(seedNumber(options.seed));
  }

  /** True when faults can happen at all (rate above 0). */
  get active(): boolean {
    return this.options.rate > 0;
  }

  /** The fault for the next call, or `undefined` for a healthy one. */
  draw(): Fault | undefined {
    // Always consume one draw for the verdict, so a rate of 0 never picks
    // and a rate of 1 always does (random() is in [0, 1)).
    if (!(this.random() < this.options.rate)) return undefined;
    const { kinds } = this.options;
    const kind = kinds[Math.floor(this.random() * kinds.length)];
    if (kind === 'latency') {
      return {
        kind,
        latencyMs: Math.floor(this.random() * (this.options.latencyMs + 1)),
      };
    }
    return { kind };
  }
}
