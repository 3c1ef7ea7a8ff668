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

  it('counts injected faults by kind and path; a reset reads as status 0', () => {
    const stats = new StatsService();
    const call = { requestBytes: 1, responseBytes: 0 };
    stats.record({ ...call, path: '/c', status: 503, fault: '503' });
    stats.record({ ...call, path: '/c', status: 0, fault: 'reset-after' });
    stats.record({ ...call, path: '/d', status: 0, fault: 'reset-after' });
    stats.record({ ...call, path: '/d', status: 200 });
    expect(stats.snapshot()).toMatchObject({
      total: 4,
      by_status: { '0': 2, '200': 1, '503': 1 },
      faults: {
        total: 3,
        by_kind: { '503': 1, 'reset-after': 2 },
        by_path: { '/c': 2, '/d': 1 },
      },
    });
    stats.reset();
    expect(stats.snapshot().faults).toEqual({
      total: 0,
      by_kind: {},
      by_path: {},
    });
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
