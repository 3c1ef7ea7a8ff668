import { startSystem } from './support/chain.js';
import { headerValues, viaCurl, viaNodeHttp } from './support/clients.js';

/** What the application sends reaches the target, and what the target answers reaches the application. */
describe('HTTP semantics through the whole chain', () => {
  let system: Awaited<ReturnType<typeof startSystem>>;

  beforeAll(async () => {
    system = await startSystem();
  });
  afterAll(async () => {
    await system?.stop();
  });

  it.each([201, 404, 500])(
    'passes the target status %i through with its body',
    async (code) => {
      const res = await viaNodeHttp(
        system.chain.proxyUrl,
        `${system.target.url}/status/${code}`,
      );
      expect(res.status).toBe(code);
      expect(res.body.toString()).toBe(`status ${code}\n`);
      expect(headerValues(res.rawHeaders, 'x-target')).toEqual(['yes']);
    },
  );

  it('keeps two Set-Cookie headers two', async () => {
    const res = await viaNodeHttp(
      system.chain.proxyUrl,
      `${system.target.url}/cookies`,
    );
    expect(headerValues(res.rawHeaders, 'set-cookie')).toEqual([
      'session=abc; Path=/; HttpOnly',
      'theme=dark; Path=/',
    ]);
  });

  it("delivers the target's own Authorization and Cookie headers intact", async () => {
    const res = await viaCurl(
      system.chain.proxyUrl,
      `${system.target.url}/echo`,
      [
        '-H',
        'Authorization: Bearer target-token-123',
        '-H',
        'Cookie: a=1; b=2',
        '-H',
        'X-Custom: kept',
      ],
    );
    expect(res.status).toBe(200);
    const seen = JSON.parse(res.body.toString()) as { rawHeaders: string[] };
    expect(headerValues(seen.rawHeaders, 'authorization')).toEqual([
      'Bearer target-token-123',
    ]);
    expect(headerValues(seen.rawHeaders, 'cookie')).toEqual(['a=1; b=2']);
    expect(headerValues(seen.rawHeaders, 'x-custom')).toEqual(['kept']);
    // Host is the target's, not the gateway's or the server's.
    expect(headerValues(seen.rawHeaders, 'host')).toEqual([
      `127.0.0.1:${system.target.port}`,
    ]);
    // Nothing of the gateway hop leaks to the target.
    expect(headerValues(seen.rawHeaders, 'x-amz-date')).toEqual([]);
    expect(headerValues(seen.rawHeaders, 'x-connection-id')).toEqual([]);
  });

  it('strips hop-by-hop headers on the way to the target', async () => {
    const res = await viaNodeHttp(
      system.chain.proxyUrl,
      `${system.target.url}/echo`,
      {
        headers: [
          'Connection',
          'keep-alive, X-Private',
          'X-Private',
          'secret',
          'Keep-Alive',
          'timeout=5',
          'Proxy-Authorization',
          'Basic dXNlcjpwYXNz',
          'TE',
          'trailers',
          'Upgrade',
          'h2c',
          'X-End-To-End',
          'passes',
        ],
      },
    );
    const seen = JSON.parse(res.body.toString()) as { rawHeaders: string[] };
    for (const name of [
      'x-private',
      'keep-alive',
      'proxy-authorization',
      'te',
      'upgrade',
    ]) {
      expect(headerValues(seen.rawHeaders, name), name).toEqual([]);
    }
    expect(headerValues(seen.rawHeaders, 'x-end-to-end')).toEqual(['passes']);
  });

  it('strips hop-by-hop headers on the way back to the application', async () => {
    const res = await viaNodeHttp(
      system.chain.proxyUrl,
      `${system.target.url}/hop`,
    );
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('hop');
    expect(headerValues(res.rawHeaders, 'x-hop-secret')).toEqual([]);
    expect(
      headerValues(res.rawHeaders, 'keep-alive').filter(
        (v) => v === 'timeout=5',
      ),
    ).toEqual([]);
    expect(headerValues(res.rawHeaders, 'x-end-to-end')).toEqual(['passes']);
  });

  it('answers HEAD with the head and no body', async () => {
    const res = await viaNodeHttp(
      system.chain.proxyUrl,
      `${system.target.url}/bytes?size=5000`,
      { method: 'HEAD' },
    );
    expect(res.status).toBe(200);
    expect(res.body.length).toBe(0);
    expect(system.target.hits('/bytes').at(-1)?.method).toBe('HEAD');
  });

  it('forwards each request to the target exactly once', async () => {
    const before = system.target.hits('/echo').length;
    await viaNodeHttp(
      system.chain.proxyUrl,
      `${system.target.url}/echo?once=1`,
      {
        method: 'POST',
        body: Buffer.alloc(3 * 1024 * 1024, 7),
      },
    );
    expect(system.target.hits('/echo').length).toBe(before + 1);
  });
});
