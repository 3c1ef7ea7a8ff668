import {
  CreateConnectionDto,
  decodeHeaderPairs,
  encodeHeaderPairs,
} from './dto.js';
import { ProtocolError } from './errors.js';
import { validateDto } from './validation.js';

const valid = {
  connection_id: '0b0c6a1e-6f1f-4d47-9a53-4a3c3c8f7c11',
  target_host: 'example.com',
  method: 'POST',
  path: '/upload?x=1',
  headers: { 'Content-Type': 'application/json', 'Set-Cookie': ['a=1', 'b=2'] },
  body_size: 3145728,
};

describe('CreateConnectionDto', () => {
  it('accepts the seed document and strips unknown fields', () => {
    const dto = validateDto(CreateConnectionDto, { ...valid, extra: 1 });
    expect(dto.target_host).toBe('example.com');
    expect((dto as unknown as Record<string, unknown>).extra).toBeUndefined();
  });

  it.each([
    [{ connection_id: 'nope' }, 'connection_id must be a UUID'],
    [{ body_size: -1 }, 'body_size must not be negative'],
    [{ path: 'no-slash' }, 'path must start with "/"'],
    [{ headers: { 'X-Evil': 'a\r\nb: c' } }, 'headers must be an object'],
    [{ scheme: 'ftp' }, 'scheme must be "http" or "https"'],
    [{ target_host: 'a b' }, 'target_host must be a host name'],
  ])('refuses %j with a message naming the field', (patch, message) => {
    try {
      validateDto(CreateConnectionDto, { ...valid, ...patch });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ProtocolError);
      expect((e as ProtocolError).status).toBe(400);
      expect((e as ProtocolError).message).toContain(message);
    }
  });

  it('encodes header pairs losslessly', () => {
    const pairs: Array<[string, string]> = [
      ['Set-Cookie', 'a=1'],
      ['Set-Cookie', 'b=2; Path=/'],
    ];
    expect(decodeHeaderPairs(encodeHeaderPairs(pairs))).toEqual(pairs);
    expect(() =>
      decodeHeaderPairs(Buffer.from('{"a":1}').toString('base64')),
    ).toThrow();
  });
});
