import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { writeBody } from './response-writer.js';

describe('writeBody', () => {
  let server: http.Server;
  let handle: (res: http.ServerResponse) => Promise<void>;
  let url: string;

  beforeAll(async () => {
    server = http.createServer((_req, res) => void handle(res));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  });

  it('writes the pieces in order and says once when the socket is done with all of them', async () => {
    const pieces = [
      Buffer.alloc(3 * 1024 * 1024, 1), // more than the socket takes at once
      Buffer.alloc(0),
      Buffer.from('tail'),
    ];
    let flushed = 0;
    let flushedBeforeEnd = false;
    handle = async (res) => {
      res.writeHead(200);
      await writeBody(res, pieces, new AbortController().signal, () => {
        flushed += 1;
      });
      // A small last piece can still sit in the socket's buffer here.
      res.end(() => (flushedBeforeEnd = flushed === 1));
    };
    const res = await request(url);
    const body = Buffer.from(await res.body.arrayBuffer());
    expect(body.equals(Buffer.concat(pieces))).toBe(true);
    await vi.waitFor(() => expect(flushed).toBe(1));
    expect(flushedBeforeEnd).toBe(true);
  });

  it('says so at once when there is nothing to write', async () => {
    let flushed = 0;
    handle = async (res) => {
      res.writeHead(200);
      await writeBody(res, [], new AbortController().signal, () => {
        flushed += 1;
      });
      expect(flushed).toBe(1);
      res.end();
    };
    const res = await request(url);
    await res.body.dump();
    expect(flushed).toBe(1);
  });
});
