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

  it.each([
    new TypeError('x is undefined'),
    coded('ERR_INVALID_ARG_TYPE'),
    coded('UND_ERR_INVALID_ARG'),
  ])('returns %s unchanged: a bug stays a bug', (bug) => {
    expect(targetFailure(bug, 'http://t:80/', 1)).toBe(bug);
  });

  it('maps TLS certificate failures to 502', () => {
    const failure = targetFailure(
      coded('DEPTH_ZERO_SELF_SIGNED_CERT'),
      'https://t:443/',
      1,
    ) as ProtocolError;
    expect(failure.status).toBe(502);
  });
});
