import { ErrorCode, ProtocolError } from '@app/protocol';
import { errorCodeOf, targetFailure } from './target-errors.js';

const coded = (code: string, message = `failure ${code}`) =>
  Object.assign(new Error(message), { code });

describe('targetFailure', () => {
  it.each([
    'ECONNREFUSED',
    'ENOTFOUND',
    'EAI_AGAIN',
    'ECONNRESET',
    'UND_ERR_SOCKET',
    'HPE_INVALID_CONSTANT',
  ])('maps %s to 502 target_unreachable naming the code', (code) => {
    const failure = targetFailure(
      coded(code),
      'http://t:80/x',
      1000,
    ) as ProtocolError;
    expect(failure).toBeInstanceOf(ProtocolError);
    expect(failure.status).toBe(502);
    expect(failure.code).toBe(ErrorCode.TargetUnreachable);
    expect(failure.message).toContain(code);
    expect(failure.message).toContain('http://t:80/x');
  });

  it.each([
    'UND_ERR_HEADERS_TIMEOUT',
    'UND_ERR_BODY_TIMEOUT',
    'UND_ERR_CONNECT_TIMEOUT',
    'ETIMEDOUT',
  ])('maps %s to 504 target_timeout', (code) => {
    const failure = targetFailure(
      coded(code),
      'http://t:80/',
      1234,
    ) as ProtocolError;
    expect(failure.status).toBe(504);
    expect(failure.code).toBe(ErrorCode.TargetTimeout);
    expect(failure.message).toContain('TARGET_TIMEOUT_MS is 1234 ms');
  });

  it('says how many bytes came before a response broke off', () => {
    const failure = targetFailure(
      coded('UND_ERR_SOCKET', 'other side closed'),
      'http://t:80/',
      1,
      4096,
    ) as ProtocolError;
    expect(failure.message).toContain('response broke off after 4096 bytes');
    expect(failure.message).toContain('other side closed');
  });

  it('finds the code inside an AggregateError (happy eyeballs) and a cause', () => {
    const aggregate = Object.assign(
      new AggregateError([coded('ECONNREFUSED')], 'all failed'),
      {
        code: 'ERR_AGGREGATE',
      },
    );
    expect(errorCodeOf(aggregate)).toBe('ECONNREFUSED');
    expect(
      errorCodeOf(new Error('wrapped', { cause: coded('ENOTFOUND') })),
    ).toBe('ENOTFOUND');
  });

  it('returns anything that is not a target failure unchanged (a bug stays a bug)', () => {
    const bug = new TypeError('x is undefined');
    expect(targetFailure(bug, 'http://t:80/', 1)).toBe(bug);
  });
});
