import { randomUUID } from 'node:crypto';
import type { LookupAddress } from 'node:dns';
import { Agent, request } from 'undici';
import { startTarget, type Target } from '../../../../test/support/target.js';
import { loadServerConfig } from '../config/server.config.js';
import { startTestServer, type TestServer } from '../testing/test-server.js';
import { TargetForbiddenError, TargetGuard } from './target-guard.js';

/** `localhost` is denied wherever it resolves (127.0.0.1, and ::1 on hosts that list it). */
const LOOPBACK_DENIED = { TARGET_DENY_CIDRS: '127.0.0.0/8,::1/128' };

function guardFor(env: Record<string, string>): TargetGuard {
  return new TargetGuard(loadServerConfig(env));
}

/** What the guard's lookup answers for `hostname`. */
function lookup(
  guard: TargetGuard,
  hostname: string,
  all: boolean,
): Promise<{ error: Error | null; address: string | LookupAddress[] }> {
  return new Promise((resolve) =>
    guard.lookup(hostname, { all }, (error, address) =>
      resolve({ error, address }),
    ),
  );
}

describe('TargetGuard', () => {
  it('denies the cloud metadata endpoints by default, in every notation', () => {
    const guard = guardFor({});
    expect(guard.refusal('169.254.169.254')).toBe(
      '169.254.169.254 is in TARGET_DENY_CIDRS (169.254.0.0/16): this server does not connect to that network (cloud metadata and other internal endpoints)',
    );
    expect(guard.refusal('fd00:ec2::254')).toContain(
      'is in TARGET_DENY_CIDRS (fd00:ec2::254/128)',
    );
    for (const host of [
      '169.254.169.254',
      '[::ffff:169.254.169.254]',
      '::ffff:a9fe:a9fe',
      '[fd00:ec2:0:0:0:0:0:254]',
      '2852039166', // 169.254.169.254 as one number: URL parsing and getaddrinfo accept it
      '0xa9.0xfe.0xa9.0xfe',
    ]) {
      expect(() => guard.checkHost(host), host).toThrow(TargetForbiddenError);
    }
    expect(() => guard.checkHost('example.com')).not.toThrow();
    expect(() => guard.checkHost('10.1.2.3')).not.toThrow();
    expect(guard.refusal('::1')).toBeUndefined();
  });

  it('denies the IPv4-mapped IPv6 form of a denied IPv4 network and the reverse', () => {
    const v4 = guardFor({ TARGET_DENY_CIDRS: '10.0.0.0/8' });
    expect(v4.refusal('::ffff:10.9.8.7')).toContain(
      '::ffff:10.9.8.7 is in TARGET_DENY_CIDRS (10.0.0.0/8)',
    );
    const mapped = guardFor({ TARGET_DENY_CIDRS: '::ffff:10.0.0.0/104' });
    expect(mapped.refusal('10.9.8.7')).toContain('is in TARGET_DENY_CIDRS');
    expect(mapped.refusal('11.0.0.1')).toBeUndefined();
  });

  it('with TARGET_ALLOW_CIDRS connects only to those networks, deny still first', () => {
    const guard = guardFor({
      TARGET_ALLOW_CIDRS: '10.0.0.0/8, 169.254.0.0/16',
    });
    expect(guard.refusal('10.0.0.1')).toBeUndefined();
    expect(guard.refusal('192.168.0.1')).toBe(
      '192.168.0.1 is not in TARGET_ALLOW_CIDRS (10.0.0.0/8, 169.254.0.0/16): this server connects only to those networks',
    );
    expect(guard.refusal('169.254.169.254')).toContain('TARGET_DENY_CIDRS');
  });

  it('with TARGET_ALLOW_HOSTS connects only to those names and wildcards', () => {
    const guard = guardFor({
      TARGET_ALLOW_HOSTS: 'api.example.com,*.internal.example.com,10.0.0.7',
    });
    for (const host of [
      'api.example.com',
      'API.Example.com.',
      'a.internal.example.com',
      'a.b.internal.example.com',
      '10.0.0.7',
    ]) {
      expect(() => guard.checkHost(host), host).not.toThrow();
    }
    for (const host of [
      'example.com',
      'internal.example.com',
      'evilinternal.example.com',
      'api.example.com.evil.net',
      '10.0.0.8',
    ]) {
      expect(() => guard.checkHost(host), host).toThrow(
        /is not in TARGET_ALLOW_HOSTS \(api\.example\.com, \*\.internal\.example\.com, 10\.0\.0\.7\)/,
      );
    }
  });

  describe('lookup', () => {
    it('refuses a name that resolves only to denied addresses, naming the address', async () => {
      const { error } = await lookup(
        guardFor(LOOPBACK_DENIED),
        'localhost',
        true,
      );
      expect(error).toBeInstanceOf(TargetForbiddenError);
      expect(error?.message).toMatch(
        /^(127\.0\.0\.1|::1) is in TARGET_DENY_CIDRS \((127\.0\.0\.0\/8|::1\/128)\) \(localhost resolves to it\)/,
      );
    });

    it('hands on the allowed addresses, as a list or as the first one', async () => {
      const guard = guardFor({ TARGET_ALLOW_CIDRS: '127.0.0.0/8' });
      const all = await lookup(guard, 'localhost', true);
      expect(all.error).toBeNull();
      expect(all.address).toEqual([{ address: '127.0.0.1', family: 4 }]);
      const one = await lookup(guard, 'localhost', false);
      expect(one.address).toBe('127.0.0.1');
    });

    it('passes DNS failures on unchanged', async () => {
      const { error } = await lookup(
        guardFor({}),
        'no-such-host.invalid',
        true,
      );
      expect(error).not.toBeInstanceOf(TargetForbiddenError);
      expect((error as NodeJS.ErrnoException).code).toMatch(
        /ENOTFOUND|EAI_AGAIN/,
      );
    });
  });

  describe('the connector backstop', () => {
    let target: Target;
    beforeAll(async () => {
      target = await startTarget();
    });
    afterAll(async () => {
      await target?.close();
    });

    it('refuses a connected peer that no lookup checked (an IP literal) before a byte is sent', async () => {
      const guard = guardFor(LOOPBACK_DENIED);
      const agent = new Agent({ connect: guard.connector({ timeout: 5000 }) });
      const before = target.hits('/echo').length;
      try {
        await expect(
          request(`http://127.0.0.1:${target.port}/echo`, {
            dispatcher: agent,
          }),
        ).rejects.toThrow(
          '127.0.0.1 is in TARGET_DENY_CIDRS (127.0.0.0/8): this server does not connect',
        );
        expect(target.hits('/echo').length).toBe(before);
      } finally {
        await agent.close();
      }
    });

    it('lets an allowed peer through', async () => {
      const agent = new Agent({
        connect: guardFor({}).connector({ timeout: 5000 }),
      });
      try {
        const res = await request(`http://127.0.0.1:${target.port}/echo`, {
          dispatcher: agent,
        });
        await res.body.arrayBuffer();
        expect(res.statusCode).toBe(200);
      } finally {
        await agent.close();
      }
    });
  });
});

describe('the SSRF guard in proxy-server', () => {
  let target: Target;
  beforeAll(async () => {
    target = await startTarget();
  });
  afterAll(async () => {
    await target?.close();
  });

  describe('with the default rules', () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startTestServer({ CONNECT_ALLOWED_PORTS: '80,443' });
    });
    afterAll(async () => {
      await server?.close();
    });

    it.each([
      ['169.254.169.254', '169.254.169.254'],
      ['[::ffff:169.254.169.254]', '::ffff:169.254.169.254'],
      ['[fd00:ec2::254]', 'fd00:ec2::254'],
      ['2852039166', '169.254.169.254'],
    ])(
      'refuses a connection to %s at creation with 403 target_forbidden',
      async (host, address) => {
        const { res } = await server.open({ target_host: host, port: 80 });
        expect(res.status).toBe(403);
        expect(res.json().error).toBe('target_forbidden');
        expect(res.json().message).toMatch(
          new RegExp(
            `^${address.replace(/\./g, '\\.')} is in TARGET_DENY_CIDRS \\((169\\.254\\.0\\.0/16|fd00:ec2::254/128)\\): `,
          ),
        );
      },
    );

    it('refuses the same through POST /proxy/exchange, opening nothing', async () => {
      const id = randomUUID();
      const res = await server.exchangeCall({
        connection_id: id,
        target_host: '169.254.169.254',
        method: 'GET',
        path: '/latest/meta-data/',
      });
      expect(res.status).toBe(403);
      expect(res.json().error).toBe('target_forbidden');
      expect((await server.response(id, 0)).status).toBe(404);
    });

    it('refuses a tunnel to a denied address at creation', async () => {
      const res = await server.call(
        'POST',
        '/proxy/tunnel',
        { 'content-type': 'application/json' },
        JSON.stringify({
          tunnel_id: randomUUID(),
          target_host: '169.254.169.254',
          port: 80,
        }),
      );
      expect(res.status).toBe(403);
      expect(res.json()).toEqual({
        error: 'target_forbidden',
        message: expect.stringContaining(
          '169.254.169.254 is in TARGET_DENY_CIDRS (169.254.0.0/16)',
        ),
      });
    });

    it('still forwards to loopback, which the defaults allow', async () => {
      const { head } = await server.exchange({ port: target.port });
      expect(head?.status).toBe(200);
    });
  });

  describe('with a name that resolves to a denied address (localhost, loopback denied)', () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startTestServer({
        ...LOOPBACK_DENIED,
        CONNECT_ALLOWED_PORTS: String(target.port),
      });
    });
    afterAll(async () => {
      await server?.close();
    });

    it('answers GET /proxy/response with 403 target_forbidden; the target sees nothing', async () => {
      const before = target.seen.length;
      const { id, res } = await server.open({
        target_host: 'localhost',
        port: target.port,
      });
      expect(res.status).toBe(201);
      expect(
        (await server.chunk(id, '', { index: 0, final: true })).status,
      ).toBe(200);
      const answer = await server.response(id, 0);
      expect(answer.status).toBe(403);
      expect(answer.json().error).toBe('target_forbidden');
      expect(answer.json().message).toMatch(
        /is in TARGET_DENY_CIDRS \((127\.0\.0\.0\/8|::1\/128)\) \(localhost resolves to it\)/,
      );
      expect(target.seen.length).toBe(before);
    });

    it('answers POST /proxy/exchange with the 403 where the target answer would be', async () => {
      const res = await server.exchangeCall({
        connection_id: randomUUID(),
        target_host: 'localhost',
        port: target.port,
        method: 'GET',
        path: '/echo',
      });
      expect(res.status).toBe(403);
      expect(res.json().error).toBe('target_forbidden');
    });

    it('refuses a literal 127.0.0.1 at creation', async () => {
      const { res } = await server.open({ port: target.port });
      expect(res.status).toBe(403);
      expect(res.json().message).toContain(
        '127.0.0.1 is in TARGET_DENY_CIDRS (127.0.0.0/8)',
      );
    });

    it('refuses a tunnel to localhost at creation, connecting nowhere', async () => {
      const res = await server.call(
        'POST',
        '/proxy/tunnel',
        { 'content-type': 'application/json' },
        JSON.stringify({
          tunnel_id: randomUUID(),
          target_host: 'localhost',
          port: target.port,
        }),
      );
      expect(res.status).toBe(403);
      expect(res.json().error).toBe('target_forbidden');
      expect(res.json().message).toContain('(localhost resolves to it)');
    });
  });

  describe('with allow-lists', () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startTestServer({
        TARGET_ALLOW_HOSTS: 'localhost,*.example.com',
        TARGET_ALLOW_CIDRS: '127.0.0.0/8',
      });
    });
    afterAll(async () => {
      await server?.close();
    });

    it('forwards to an allowed name whose address is in an allowed network', async () => {
      const { head, chunks } = await server.exchange({
        target_host: 'localhost',
        port: target.port,
      });
      expect(head?.status).toBe(200);
      expect(Buffer.concat(chunks).length).toBeGreaterThan(0);
    });

    it('refuses a name outside TARGET_ALLOW_HOSTS at creation', async () => {
      const { res } = await server.open({ target_host: 'example.org' });
      expect(res.status).toBe(403);
      expect(res.json().message).toBe(
        "example.org is not in TARGET_ALLOW_HOSTS (localhost, *.example.com): this server connects only to those hosts. Choose another target, or ask the server's operator to change the target rules.",
      );
    });

    it('refuses an IP literal that is not listed in TARGET_ALLOW_HOSTS', async () => {
      const { res } = await server.open({ port: target.port });
      expect(res.status).toBe(403);
      expect(res.json().message).toContain(
        '127.0.0.1 is not in TARGET_ALLOW_HOSTS',
      );
    });
  });

  it('refuses an address outside TARGET_ALLOW_CIDRS', async () => {
    const server = await startTestServer({ TARGET_ALLOW_CIDRS: '10.0.0.0/8' });
    try {
      const { res } = await server.open({ port: target.port });
      expect(res.status).toBe(403);
      expect(res.json().message).toContain(
        '127.0.0.1 is not in TARGET_ALLOW_CIDRS (10.0.0.0/8)',
      );
    } finally {
      await server.close();
    }
  });
});
