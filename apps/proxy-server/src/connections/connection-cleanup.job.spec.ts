import { SchedulerRegistry } from '@nestjs/schedule';
import { startTarget, type Target } from '../../../../test/support/target.js';
import { startTestServer, type TestServer } from '../testing/test-server.js';
import { ConnectionCleanupJob } from './connection-cleanup.job.js';

describe('ConnectionCleanupJob', () => {
  let target: Target;
  let server: TestServer;
  let job: ConnectionCleanupJob;

  beforeAll(async () => {
    target = await startTarget();
    server = await startTestServer({
      CONNECTION_TTL_MS: '60000',
      RESPONSE_WAIT_MS: '10000',
    });
    job = server.app.get(ConnectionCleanupJob);
  });
  afterAll(async () => {
    await server?.close();
    await target?.close();
  });

  it('is registered as the named interval', () => {
    expect(server.app.get(SchedulerRegistry).getIntervals()).toContain(
      ConnectionCleanupJob.NAME,
    );
  });

  it('releases connections idle longer than CONNECTION_TTL_MS and keeps the others', async () => {
    const idle = await server.open({ port: target.port });
    server.clock.advance(30_000);
    const active = await server.open({ port: target.port });
    server.clock.advance(20_000);
    // Only the second one is used again, which resets its idle time.
    await server.chunk(active.id, 'x', { index: 0 });

    expect(await job.sweep()).toBe(0);
    server.clock.advance(10_001);
    expect(await job.sweep()).toBe(1);

    const gone = await server.chunk(idle.id, 'x', { index: 0 });
    expect(gone.status).toBe(404);
    expect(gone.json().error).toBe('connection_not_found');
    expect((await server.chunk(active.id, 'y', { index: 1 })).status).toBe(200);
  });

  it('ends a long-poll of an expired connection with 404 and aborts its target request', async () => {
    const { id } = await server.open({ port: target.port, path: '/hang' });
    const before = target.hanging.length;
    await server.chunk(id, '', { index: 0, final: true });
    await vi.waitFor(() => expect(target.hanging.length).toBe(before + 1));
    const hung = target.hanging[before];
    const targetClosed = new Promise<void>((resolve) =>
      hung.once('close', () => resolve()),
    );
    const waiting = server.response(id, 0);
    await vi.waitFor(async () => {
      const { ConnectionsService } = await import('./connections.service.js');
      const connection = await server.app.get(ConnectionsService).require(id);
      expect(connection.response.waiters).toBe(1);
    });
    server.clock.advance(60_001);
    expect(await job.sweep()).toBeGreaterThanOrEqual(1);
    const answer = await waiting;
    expect(answer.status).toBe(404);
    expect(answer.json().error).toBe('connection_not_found');
    await targetClosed;
  });
});
