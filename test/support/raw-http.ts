import { once } from 'node:events';
import net from 'node:net';

/** One HTTP/1.1 response as it came off the wire. */
export interface RawResponse {
  status: number;
  reason: string;
  /** Header pairs in wire order, names as sent. */
  headers: Array<[string, string]>;
  body: Buffer;
}

/** What one raw exchange produced. */
export interface RawOutcome {
  /** Every byte the peer sent. */
  data: Buffer;
  /** The peer closed (or reset) the connection within the time given. */
  closed: boolean;
}

/**
 * Writes `bytes` to 127.0.0.1:`port` and collects what comes back until the
 * peer closes or `timeoutMs` pass. `halfClose` sends FIN after the bytes: for
 * a request cut short on purpose (a complete request must not be followed by
 * FIN, or Node's server aborts it before it answers). `finAfterMs`: send
 * FIN anyway when the peer has not closed by then (input the peer still
 * waits on, for generated requests whose framing is not known in advance).
 */
export async function rawSend(
  port: number,
  bytes: Buffer | string,
  options: {
    halfClose?: boolean;
    finAfterMs?: number;
    timeoutMs?: number;
  } = {},
): Promise<RawOutcome> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined); // a reset shows as a close
  await once(socket, 'connect');
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  const closed = once(socket, 'close').then(() => true);
  const after = (ms: number) =>
    new Promise<false>((resolve) =>
      setTimeout(() => resolve(false), ms).unref(),
    );
  if (options.halfClose) socket.end(bytes);
  else socket.write(bytes);
  let outcome = false;
  if (options.finAfterMs !== undefined && !options.halfClose) {
    outcome = await Promise.race([closed, after(options.finAfterMs)]);
    if (!outcome) socket.end();
  }
  if (!outcome) {
    outcome = await Promise.race([closed, after(options.timeoutMs ?? 5000)]);
  }
  socket.destroy();
  return { data: Buffer.concat(chunks), closed: outcome };
}

const STATUS_LINE = /^HTTP\/1\.[01] (\d{3}) ([^\r\n]*)$/;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Parses `data` as a sequence of HTTP/1.x responses, strictly: a status
 * line, token header names, a body framed by Content-Length or chunked
 * encoding (or running to the close). Throws with the reason when the bytes
 * are not well-formed responses. `headRequest`: the bodies are absent.
 */
export function parseResponses(
  data: Buffer,
  options: { closed: boolean; headRequest?: boolean },
): RawResponse[] {
  const responses: RawResponse[] = [];
  let at = 0;
  while (at < data.length) {
    const end = data.indexOf('\r\n\r\n', at, 'latin1');
    if (end === -1) {
      throw new Error(
        `incomplete response head: ${JSON.stringify(data.subarray(at, at + 200).toString('latin1'))}`,
      );
    }
    const [statusLine, ...lines] = data
      .subarray(at, end)
      .toString('latin1')
      .split('\r\n');
    const status = STATUS_LINE.exec(statusLine);
    if (!status)
      throw new Error(`bad status line ${JSON.stringify(statusLine)}`);
    const headers: Array<[string, string]> = lines.map((line) => {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon);
      if (colon <= 0 || !TOKEN.test(name)) {
        throw new Error(`bad header line ${JSON.stringify(line)}`);
      }
      return [name, line.slice(colon + 1).trim()];
    });
    at = end + 4;
    const code = Number(status[1]);
    const header = (name: string) =>
      headers.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
    let body: Buffer = Buffer.alloc(0);
    const bodyless =
      code < 200 || code === 204 || code === 304 || options.headRequest;
    const length = header('content-length');
    if (bodyless) {
      // no body
    } else if (/chunked/i.test(header('transfer-encoding').join(','))) {
      const pieces: Buffer[] = [];
      for (;;) {
        const lineEnd = data.indexOf('\r\n', at, 'latin1');
        if (lineEnd === -1) throw new Error('incomplete chunked body');
        const size = parseInt(data.subarray(at, lineEnd).toString(), 16);
        if (!Number.isSafeInteger(size)) throw new Error('bad chunk size');
        at = lineEnd + 2;
        if (size === 0) {
          const trailerEnd = data.indexOf('\r\n', at, 'latin1');
          if (trailerEnd !== at) throw new Error('trailers or no final CRLF');
          at += 2;
          break;
        }
        if (at + size + 2 > data.length) throw new Error('incomplete chunk');
        pieces.push(data.subarray(at, at + size));
        at += size + 2;
      }
      body = Buffer.concat(pieces);
    } else if (length.length > 0) {
      if (new Set(length).size !== 1 || !/^\d+$/.test(length[0])) {
        throw new Error(`bad Content-Length ${JSON.stringify(length)}`);
      }
      const size = Number(length[0]);
      if (at + size > data.length) {
        throw new Error(
          `body shorter than its Content-Length ${size}: ${data.length - at} bytes`,
        );
      }
      body = data.subarray(at, at + size);
      at += size;
    } else {
      if (!options.closed) throw new Error('body without length, not closed');
      body = data.subarray(at);
      at = data.length;
    }
    responses.push({ status: code, reason: status[2], headers, body });
    if (options.headRequest && /close/i.test(header('connection').join(','))) {
      // Bytes after an answer to HEAD that closes the connection: a body
      // sent anyway (an error answered before the method was known), which
      // the closing makes harmless.
      break;
    }
  }
  return responses;
}

/** The value of a header of `response` (the first if repeated). */
export function headerOf(
  response: RawResponse,
  name: string,
): string | undefined {
  return response.headers.find(([n]) => n.toLowerCase() === name)?.[1];
}
