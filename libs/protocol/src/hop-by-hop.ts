/**
 * Hop-by-hop headers (RFC 9110 section 7.6.1) belong to one connection and
 * must not be forwarded by a proxy. `Host` is not hop-by-hop but is rebuilt
 * from the target URL, and `Proxy-Connection` is a non-standard relic curl
 * and old browsers still send.
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** A header list as `[name, value]` pairs, order and repetitions kept. */
export type HeaderPairs = Array<[string, string]>;

/** Names listed in `Connection` headers (`Connection: close, X-Foo`). */
function connectionTokens(pairs: HeaderPairs): Set<string> {
  const tokens = new Set<string>();
  for (const [name, value] of pairs) {
    if (name.toLowerCase() !== 'connection') continue;
    for (const token of value.split(',')) {
      const t = token.trim().toLowerCase();
      if (t) tokens.add(t);
    }
  }
  return tokens;
}

/**
 * Removes hop-by-hop headers, every header named by `Connection`, and the
 * names in `alsoDrop` (lower-case), keeping everything else in order.
 */
export function stripHopByHop(
  pairs: HeaderPairs,
  alsoDrop: Iterable<string> = [],
): HeaderPairs {
  const drop = connectionTokens(pairs);
  for (const name of alsoDrop) drop.add(name);
  return pairs.filter(([name]) => {
    const lower = name.toLowerCase();
    return !HOP_BY_HOP.has(lower) && !drop.has(lower);
  });
}

/** Turns Node's `rawHeaders` (`[name, value, name, value, ...]`) into pairs. */
export function pairsFromRawHeaders(raw: readonly string[]): HeaderPairs {
  const pairs: HeaderPairs = [];
  for (let i = 0; i + 1 < raw.length; i += 2) pairs.push([raw[i], raw[i + 1]]);
  return pairs;
}

/**
 * Turns a headers record (values single or repeated) into pairs.
 * This is the shape of `headers` in the connection JSON.
 */
export function pairsFromRecord(
  record: Record<string, string | string[] | undefined>,
): HeaderPairs {
  const pairs: HeaderPairs = [];
  for (const [name, value] of Object.entries(record)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value])
      pairs.push([name, v]);
  }
  return pairs;
}

/** Groups pairs into a record, repeated names becoming arrays (wire shape of `headers`). */
export function recordFromPairs(
  pairs: HeaderPairs,
): Record<string, string | string[]> {
  const record: Record<string, string | string[]> = {};
  for (const [name, value] of pairs) {
    const existing = record[name];
    if (existing === undefined) record[name] = value;
    else if (Array.isArray(existing)) existing.push(value);
    else record[name] = [existing, value];
  }
  return record;
}
