import {
  FAULT_KINDS,
  FaultPlan,
  mulberry32,
  seedNumber,
  type Fault,
  type FaultKind,
} from './fault-plan.js';

const draws = (plan: FaultPlan, n: number): (Fault | undefined)[] =>
  Array.from({ length: n }, () => plan.draw());

describe('FaultPlan', () => {
  it('never faults at rate 0', () => {
    const plan = new FaultPlan({
      rate: 0,
      kinds: FAULT_KINDS,
      latencyMs: 100,
      seed: 'zero',
    });
    expect(plan.active).toBe(false);
    expect(draws(plan, 10_000).filter(Boolean)).toEqual([]);
  });

  it('always faults at rate 1, drawing every kind', () => {
    const plan = new FaultPlan({
      rate: 1,
      kinds: FAULT_KINDS,
      latencyMs: 100,
      seed: 'one',
    });
    const seen = draws(plan, 2_000);
    expect(seen.every(Boolean)).toBe(true);
    const counts = new Map<FaultKind, number>();
    for (const fault of seen)
      counts.set(fault!.kind, (counts.get(fault!.kind) ?? 0) + 1);
    expect([...counts.keys()].sort()).toEqual([...FAULT_KINDS].sort());
    // Equally likely: each of 7 kinds near 2000/7 ≈ 286.
    for (const count of counts.values()) {
      expect(count).toBeGreaterThan(200);
      expect(count).toBeLessThan(380);
    }
  });

  it('faults about `rate` of the calls', () => {
    const plan = new FaultPlan({
      rate: 0.1,
      kinds: FAULT_KINDS,
      latencyMs: 100,
      seed: 'tenth',
    });
    const faulty = draws(plan, 20_000).filter(Boolean).length;
    expect(faulty).toBeGreaterThan(1_800);
    expect(faulty).toBeLessThan(2_200);
  });

  it('draws only the kinds configured', () => {
    const plan = new FaultPlan({
      rate: 1,
      kinds: ['503', 'reset-after'],
      latencyMs: 100,
      seed: 'kinds',
    });
    const kinds = new Set(draws(plan, 1_000).map((fault) => fault?.kind));
    expect([...kinds].sort()).toEqual(['503', 'reset-after']);
  });

  it('draws latency uniformly from 0 to the bound, inclusive', () => {
    const plan = new FaultPlan({
      rate: 1,
      kinds: ['latency'],
      latencyMs: 9,
      seed: 'latency',
    });
    const delays = draws(plan, 5_000).map((fault) =>
      fault?.kind === 'latency' ? fault.latencyMs : -1,
    );
    expect(Math.min(...delays)).toBe(0);
    expect(Math.max(...delays)).toBe(9);
    const mean = delays.reduce((a, b) => a + b, 0) / delays.length;
    expect(mean).toBeGreaterThan(4);
    expect(mean).toBeLessThan(5);
  });

  it('repeats its draws for the same seed, and differs for another', () => {
    const options = { rate: 0.3, kinds: FAULT_KINDS, latencyMs: 50 };
    const first = draws(new FaultPlan({ ...options, seed: 'e2e-1' }), 500);
    const again = draws(new FaultPlan({ ...options, seed: 'e2e-1' }), 500);
    const other = draws(new FaultPlan({ ...options, seed: 'e2e-2' }), 500);
    expect(again).toEqual(first);
    expect(other).not.toEqual(first);
  });

  it('refuses an empty list of kinds', () => {
    expect(
      () => new FaultPlan({ rate: 1, kinds: [], latencyMs: 0, seed: 'x' }),
    ).toThrow('at least one fault kind');
  });
});

describe('mulberry32 and seedNumber', () => {
  it('give values in [0, 1) fixed by the seed', () => {
    const a = mulberry32(seedNumber('42'));
    const b = mulberry32(seedNumber('42'));
    const values = Array.from({ length: 1_000 }, () => a());
    expect(values.every((v) => v >= 0 && v < 1)).toBe(true);
    expect(Array.from({ length: 1_000 }, () => b())).toEqual(values);
    expect(seedNumber('42')).not.toBe(seedNumber('43'));
  });
});
