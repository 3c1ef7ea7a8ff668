import {
  backoffDelay,
  isRetryableError,
  isRetryableStatus,
  parseRetryAfter,
} from './retry-policy.js';

const json = (value: unknown) => Buffer.from(JSON.stringify(value));

describe('retry policy', () => {
  it.each([429, 502, 503, 504])(
    'retries %i from the gateway itself',
    (status) => {
      expect(
        isRetryableStatus(status, json({ message: 'Service Unavailable' })),
      ).toBe(true);
      expect(
        isRetryableStatus(status, Buffer.from('<html>bad gateway</html>')),
      ).toBe(true);
      expect(isRetryableStatus(status, Buffer.alloc(0))).toBe(true);
    },
  );

  it.each([200, 202, 400, 401, 403, 404, 409, 413, 500])(
    'does not retry %i',
    (status) => {
      expect(isRetryableStatus(status, json({ message: 'Forbidden' }))).toBe(
        false,
      );
    },
  );

  it("does not retry the server's verdict on the target", () => {
    expect(
      isRetryableStatus(
        502,
        json({ error: 'target_unreachable', message: 'refused' }),
      ),
    ).toBe(false);
    expect(
      isRetryableStatus(
        504,
        json({ error: 'target_timeout', message: 'slow' }),
      ),
    ).toBe(false);
  });

  it.each([
    'ECONNRESET',
    'ECONNREFUSED',
    'EPIPE',
    'UND_ERR_SOCKET',
    'UND_ERR_HEADERS_TIMEOUT',
  ])('retries network error %s, also when wrapped', (code) => {
    expect(isRetryableError(Object.assign(new Error('x'), { code }))).toBe(
      true,
    );
    expect(
      isRetryableError(
        new Error('fetch failed', {
          cause: Object.assign(new Error('y'), { code }),
        }),
      ),
    ).toBe(true);
  });

  it.each(['ENOTFOUND', 'ERR_INVALID_ARG_TYPE', undefined])(
    'does not retry %s',
    (code) => {
      expect(isRetryableError(Object.assign(new Error('x'), { code }))).toBe(
        false,
      );
    },
  );

  it('backs off exponentially with full jitter, bounded', () => {
    const options = { maxRetries: 10, baseMs: 100, maxDelayMs: 1000 };
    const top = { ...options, random: () => 0.999999 };
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, top))).toEqual([
      99, 199, 399, 799, 999, 999,
    ]);
    expect(backoffDelay(3, { ...options, random: () => 0 })).toBe(0);
    for (let n = 1; n <= 30; n++) {
      const d = backoffDelay(n, options);
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(1000);
    }
  });

  it('honours Retry-After as a lower bound, still within the cap', () => {
    const options = {
      maxRetries: 5,
      baseMs: 100,
      maxDelayMs: 5000,
      random: () => 0,
    };
    expect(backoffDelay(1, options, parseRetryAfter('2'))).toBe(2000);
    expect(backoffDelay(1, options, parseRetryAfter('120'))).toBe(5000);
    expect(parseRetryAfter(new Date(61_000).toUTCString(), 1_000)).toBe(60_000);
    expect(parseRetryAfter('soon')).toBeUndefined();
  });
});
