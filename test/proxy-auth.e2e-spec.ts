import { startApp, startSystem, type RunningApp } from './support/chain.js';
import {
  closedPort,
  headerValues,
  type ErrorBody,
  rawExchange,
  viaCurl,
  viaNodeHttp,
} from './support/clients.js';

const USER = 'alice';
const PASSWORD = 'n0t:so-secret';
const TOKEN = Buffer.from(`${USER}:${PASSWORD}`).toString('base64');

/** CLIENT_PROXY_AUTH through the whole chain, with curl and raw sockets. */
describe('proxy authentication (CLIENT_PROXY_AUTH)', () => {
  let system: Awaited<ReturnType<typeof startSystem>>;
  const extra: RunningApp[] = [];

  beforeAll(async () => {
    system = await startSystem({
      client: { CLIENT_PROXY_AUTH: `${USER}:${PASSWORD}` },
    });
  });
  afterAll(async () => {
    await Promise.all(extra.map((app) => app.stop()));
    await system?.stop();
  });

  it('relays a request with the right credentials, and the target never sees them', async () => {
    const res = await viaCurl(
      system.chain.proxyUrl,
      `${system.target.url}/echo`,
      [
        '--proxy-user',
        `${USER}:${PASSWORD}`,
        '-H',
        'Authorization: Bearer for-the-target',
      ],
    );
    expect(res.status).toBe(200);
    const seen = JSON.parse(res.body.toString()) as { rawHeaders: string[] };
    expect(headerValues(seen.rawHeaders, 'proxy-authorization')).toEqual([]);
    expect(headerValues(seen.rawHeaders, 'authorization')).toEqual([
      'Bearer for-the-target',
    ]);
    expect(JSON.stringify(seen.rawHeaders)).not.toContain(TOKEN);
  });

  it('answers a request without credentials 407 with the Basic challenge and a JSON body', async () => {
    const res = await viaCurl(
      system.chain.proxyUrl,
      `${system.target.url}/echo`,
    );
    expect(res.status).toBe(407);
    expect(res.head).toMatch(
      /^proxy-authenticate: Basic realm="chunkgate"\r$/im,
    );
    const body = JSON.parse(res.body.toString()) as ErrorBody;
    expect(body.error).toBe('proxy_auth_required');
    expect(body.message).toMatch(/CLIENT_PROXY_AUTH/);
  });

  it('answers wrong credentials 407 and sends nothing on', async () => {
    const before = system.target.hits('/echo').length;
    const res = await viaNodeHttp(
      system.chain.proxyUrl,
      `${system.target.url}/echo`,
      {
        method: 'POST',
        headers: {
          'proxy-authorization': `Basic ${Buffer.from(`${USER}:wrong`).toString('base64')}`,
        },
        body: Buffer.from('must not arrive'),
      },
    );
    expect(res.status).toBe(407);
    expect((JSON.parse(res.body.toString()) as ErrorBody).message).toMatch(
      /^The Proxy-Authorization credentials are not valid/,
    );
    expect(system.target.hits('/echo').length).toBe(before);
  });

  it('guards CONNECT alike: 407 without credentials, relayed to the server with them', async () => {
    const refused = await rawExchange(
      system.chain.client.port,
      'CONNECT example.com:22 HTTP/1.1\r\nHost: example.com:22\r\n\r\n',
    );
    expect(refused).toMatch(/^HTTP\/1\.1 407 /);
    expect(refused).toContain('proxy_auth_required');
    // Past the listener, the server's own rule answers: port 22 is not allowed.
    const admitted = await rawExchange(
      system.chain.client.port,
      `CONNECT example.com:22 HTTP/1.1\r\nHost: example.com:22\r\nProxy-Authorization: Basic ${TOKEN}\r\n\r\n`,
    );
    expect(admitted).toMatch(/^HTTP\/1\.1 403 /);
    expect(admitted).toContain('connect_port_forbidden');
  });

  it('never logs the credentials', () => {
    const output = system.chain.client.output();
    expect(output).toMatch(/407/); // the refusals above were logged
    expect(output).not.toContain(PASSWORD);
    expect(output).not.toContain(TOKEN);
  });

  it('warns at start-up when listening beyond loopback without CLIENT_PROXY_AUTH', async () => {
    // Bound to every interface for a moment, but with a gateway that does
    // not exist: nobody can relay anything through it.
    const exposed = await startApp('proxy-client', {
      CLIENT_LISTEN_HOST: '0.0.0.0',
      CLIENT_LISTEN_PORT: '0',
      API_GATEWAY_URL: `http://127.0.0.1:${await closedPort()}`,
    });
    extra.push(exposed);
    await exposed.stop();
    expect(exposed.output()).toMatch(
      /WARN .*CLIENT_LISTEN_HOST=0\.0\.0\.0 is not a loopback address and CLIENT_PROXY_AUTH is not set: anyone who can reach port \d+ can use this proxy/,
    );
    expect(system.chain.client.output()).not.toMatch(
      /is not a loopback address/,
    );
  });
});
