import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { ProtocolError } from '@app/protocol';
import { connectTarget, tunnelFailure, tunnelTarget } from './target-socket.js';

describe('tunnelTarget', () => {
  it('takes IPv6 out of its brackets for connecting and keeps them for display', () => {
    expect(tunnelTarget('[::1]', 443)).toEqual({
      host: '::1',
      port: 443,
      display: '[::1]:443',
    });
    expect(tunnelTarget('example.com', 8443).display).toBe('example.com:8443');
  });
});

describe('connectTarget', () => {
  it('resolves with an open, half-close capable socket once the target accepted', async () => {
    const server = net.createServer().listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const accepted = once(server, 'connection');
    try {
      const socket = await connectTarget(tunnelTarget('127.0.0.1', port), {
        timeoutMs: 5000,
      });
      await accepted;
      expect(socket.allowHalfOpen).toBe(true);
      expect(socket.readyState).toBe('open');
      socket.destroy();
    } finally {
      server.close();
    }
  });

  it('answers 504 target_timeout when connecting takes longer than the bound', async () => {
    const target = tunnelTarget('slow.test', 443);
    const started = Date.now();
    const error = await connectTarget(target, {
      timeoutMs: 50,
      // A DNS lookup that never answers: the connect can only time out.
      lookup: () => undefined,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as ProtocolError).status).toBe(504);
    expect((error as ProtocolError).code).toBe('target_timeout');
    expect((error as ProtocolError).message).toBe(
      'Target slow.test:443 failed: connecting took longer than TUNNEL_CONNECT_TIMEOUT_MS (50 ms).',
    );
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('gives up with 503 when the server shuts down during the connect', async () => {
    const stop = new AbortController();
    const pending = connectTarget(tunnelTarget('slow.test', 443), {
      timeoutMs: 10_000,
      lookup: () => undefined,
      signal: stop.signal,
    }).catch((e: unknown) => e);
    stop.abort();
    expect(((await pending) as ProtocolError).status).toBe(503);
  });
});

describe('tunnelFailure', () => {
  const target = tunnelTarget('example.com', 443);

  it('maps an OS connect timeout to 504 and a reset to 502 naming the stage', () => {
    const timeout = tunnelFailure(
      Object.assign(new Error('connect ETIMEDOUT'), { code: 'ETIMEDOUT' }),
      target,
      10_000,
    );
    expect([timeout.status, timeout.code]).toEqual([504, 'target_timeout']);
    const reset = tunnelFailure(
      Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }),
      target,
      10_000,
      'after the tunnel opened',
    );
    expect([reset.status, reset.code]).toEqual([502, 'target_unreachable']);
    expect(reset.message).toBe(
      'Target example.com:443 failed after the tunnel opened: the target reset the connection (ECONNRESET: read ECONNRESET).',
    );
  });

  it('still answers 502 for a failure without a network code', () => {
    const odd = tunnelFailure(new Error('socket hang up'), target, 10_000);
    expect([odd.status, odd.code, odd.message]).toEqual([
      502,
      'target_unreachable',
      'Target example.com:443 failed: socket hang up.',
    ]);
  });
});
