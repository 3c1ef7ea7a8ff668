import {
  MAX_DISTINCT_PATHS,
  OTHER_PATHS,
  StatsService,
} from './stats.service.js';

describe('StatsService', () => {
  it('counts totals, paths, statuses and bytes, and resets', () => {
    const stats = new StatsService();
    stats.record({
      path: '/a',
      status: 200,
      requestBytes: 3,
      responseBytes: 5,
    });
    stats.record({
      path: '/a',
      status: 403,
      requestBytes: 0,
      responseBytes: 1,
    });
    expect(stats.snapshot()).toMatchObject({
      total: 2,
      by_path: { '/a': 2 },
      by_status: { '200': 1, '403': 1 },
      request_bytes: 3,
      response_bytes: 6,
    });
    expect(stats.reset().total).toBe(2);
    expect(stats.snapshot().total).toBe(0);
  });

  it('keeps memory bounded when paths are endless', () => {
    const stats = new StatsService();
    for (let i = 0; i < MAX_DISTINCT_PATHS + 50; i++) {
      stats.record({
        path: `/p/${i}`,
        status: 200,
        requestBytes: 0,
        responseBytes: 0,
      });
    }
    stats.record({
      path: '/p/0',
      status: 200,
      requestBytes: 0,
      responseBytes: 0,
    });
    const snapshot = stats.snapshot();
    expect(Object.keys(snapshot.by_path)).toHaveLength(MAX_DISTINCT_PATHS + 1);
    expect(snapshot.by_path[OTHER_PATHS]).toBe(50);
    expect(snapshot.by_path['/p/0']).toBe(2);
  });
});
