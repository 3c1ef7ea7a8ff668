import { HttpException } from '@nestjs/common';
import type { Agent } from 'undici';
import { startTarget, type Target } from '../../../../test/support/target.js';
import { ConnectionsService } from '../connections/connections.service.js';
import { TargetService } from '../target/target.service.js';
import {
  type Answer,
  startTestServer,
  type TestServer,
} from '../testing/test-server.js';

/** A bug, as JavaScript throws one: a message naming internals and a stack. */
function bug(): TypeError {
  const error = new TypeError(
    "Cannot read properties of undefined (reading 'secretThing')",
  );
  expect(error.stack).toMatch(/\n\s+at /);
  return error;
}

/** The body is exactly `{ error, message }`, and nothing of the bug leaks into it. */
function expectNoInternals(res: Answer): void {
  const text = res.body.toString();
  expect(Object.keys(res.json()).sort()).toEqual(['error', 'message']);
  expect(text).not.toMatch(/\n\s+at |\\n\s+at |\.ts:\d+|\.js:\d+/);
  expect(text).not.toContain('secretThing');
  expect(text).not.toContain('TypeError');
}

describe('internal errors in answers', () => {
  let target: Target;
  let server: TestServer;

  beforeAll(async () => {
    target = await startTarget();
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
    await target?.close();
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('answers a bug in a route with 500 internal_error and no stack or detail', async () => {
    vi.spyOn(server.app.get(ConnectionsService), 'create').mockRejectedValue(
      bug(),
    );
    const { res } = await server.open({ port: target.port });
    expect(res.status).toBe(500);
    expect(res.json()).toEqual({
      error: 'internal_error',
      message:
        'proxy-server failed unexpectedly (a bug, not your input); the details are in its log. Try again or report it.',
    });
    expectNoInternals(res);
  });

  it('answers a bug while forwarding to the target at GET /proxy/response without a stack', async () => {
    const targets = server.app.get(TargetService);
    const agent = (targets as unknown as { agent: Agent }).agent;
    vi.spyOn(agent, 'request').mockRejectedValue(bug());
    const { id } = await server.open({ port: target.port });
    await server.chunk(id, '', { index: 0, final: true });
    const res = await server.response(id, 0);
    expect(res.status).toBe(500);
    expect(res.json().error).toBe('internal_error');
    expectNoInternals(res);
  });

  it('answers a 5xx HttpException with its message only', async () => {
    vi.spyOn(server.app.get(ConnectionsService), 'release').mockRejectedValue(
      new HttpException('Service Unavailable', 503),
    );
    const res = await server.call('DELETE', '/proxy/connection', {
      'x-connection-id': '0b0c6a1e-6f1f-4d47-9a53-4a3c3c8f7c11',
    });
    expect(res.status).toBe(503);
    expect(res.json()).toEqual({
      error: 'internal_error',
      message: 'Service Unavailable',
    });
    expect(res.body.toString()).not.toMatch(/\n\s+at /);
  });

  it('keeps serving after them', async () => {
    const { head } = await server.exchange({ port: target.port });
    expect(head?.status).toBe(200);
  });
});
