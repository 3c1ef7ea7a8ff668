import {
  pairsFromRecord,
  recordFromPairs,
  stripHopByHop,
} from './hop-by-hop.js';

describe('stripHopByHop', () => {
  it('drops RFC 9110 hop-by-hop headers and the ones Connection names', () => {
    const kept = stripHopByHop([
      ['Connection', 'close, X-Private'],
      ['X-Private', 'secret'],
      ['Keep-Alive', 'timeout=5'],
      ['Transfer-Encoding', 'chunked'],
      ['TE', 'trailers'],
      ['Trailer', 'X-Sum'],
      ['Upgrade', 'h2c'],
      ['Proxy-Authorization', 'Basic abc'],
      ['Proxy-Authenticate', 'Basic'],
      ['Proxy-Connection', 'keep-alive'],
      ['Set-Cookie', 'a=1'],
      ['Set-Cookie', 'b=2'],
      ['Authorization', 'Bearer t'],
    ]);
    expect(kept).toEqual([
      ['Set-Cookie', 'a=1'],
      ['Set-Cookie', 'b=2'],
      ['Authorization', 'Bearer t'],
    ]);
  });

  it('round-trips repeated headers through the record shape', () => {
    const pairs: Array<[string, string]> = [
      ['set-cookie', 'a=1'],
      ['x-one', 'v'],
      ['set-cookie', 'b=2'],
    ];
    expect(recordFromPairs(pairs)).toEqual({
      'set-cookie': ['a=1', 'b=2'],
      'x-one': 'v',
    });
    expect(pairsFromRecord(recordFromPairs(pairs))).toEqual([
      ['set-cookie', 'a=1'],
      ['set-cookie', 'b=2'],
      ['x-one', 'v'],
    ]);
  });
});
