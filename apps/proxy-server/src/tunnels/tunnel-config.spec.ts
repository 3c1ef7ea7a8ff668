import { loadServerConfig } from '../config/server.config.js';
import { parsePortList } from './port-list.js';

/** The tunnel settings of proxy-server's configuration (the rest is config/server.config.spec.ts). */
describe('tunnel configuration', () => {
  const refusal = (env: Record<string, string>) => {
    try {
      loadServerConfig(env);
    } catch (error) {
      return (error as Error).message;
    }
    return 'accepted';
  };

  it('defaults to port 443 only, 5 min idle timeout, 20 s long-poll, 10 s connect', () => {
    expect(loadServerConfig({})).toMatchObject({
      connectAllowedPorts: [443],
      tunnelIdleTimeoutMs: 300000,
      tunnelWaitMs: 20000,
      tunnelConnectTimeoutMs: 10000,
    });
  });

  it('reads a comma-separated port list, spaces and repeats tolerated', () => {
    expect(
      loadServerConfig({ CONNECT_ALLOWED_PORTS: ' 443, 8443,443 ' })
        .connectAllowedPorts,
    ).toEqual([443, 8443]);
    expect(parsePortList('1,65535')).toEqual([1, 65535]);
    expect(
      loadServerConfig({ CONNECT_ALLOWED_PORTS: '' }).connectAllowedPorts,
    ).toEqual([443]);
  });

  it.each(['443,', 'https', '0', '65536', '443;8443', '-1'])(
    'refuses CONNECT_ALLOWED_PORTS=%j naming the variable',
    (value) => {
      expect(refusal({ CONNECT_ALLOWED_PORTS: value })).toBe(
        `Invalid configuration:\n  CONNECT_ALLOWED_PORTS=${JSON.stringify(value)}: must be a comma-separated list of ports from 1 to 65535, such as 443,8443`,
      );
    },
  );

  it.each([
    ['TUNNEL_WAIT_MS', '26000', ' from 1 to 25000'],
    ['TUNNEL_CONNECT_TIMEOUT_MS', '0', ' from 1 to 25000'],
    ['TUNNEL_IDLE_TIMEOUT_MS', '999', ', at least 1000'],
  ])('refuses %s=%s', (name, value, bound) => {
    expect(refusal({ [name]: value })).toContain(
      `${name}="${value}": must be a whole number of milliseconds${bound}`,
    );
  });
});
