import { startChain, type RunningChain } from '../../scripts/chain.mjs';
import { startTarget, type Target } from './target.js';

export { startApp, startChain } from '../../scripts/chain.mjs';
export type { RunningApp, RunningChain } from '../../scripts/chain.mjs';

/** The gateway limit the system exists to get around, as in the issue. */
export const GATEWAY_LIMIT = 2 * 1024 * 1024;

/**
 * A local target plus the whole chain (server, gateway with a 2 MiB limit and
 * a `prod` stage, client) on free ports. Call in `beforeAll`, stop in `afterAll`.
 */
export async function startSystem(
  options: Parameters<typeof startChain>[0] = {},
): Promise<{ target: Target; chain: RunningChain; stop: () => Promise<void> }> {
  const target = await startTarget();
  const chain = await startChain({
    stage: 'prod',
    ...options,
    gateway: {
      GATEWAY_MAX_BODY_BYTES: String(GATEWAY_LIMIT),
      ...options.gateway,
    },
  }).catch(async (error: unknown) => {
    await target.close();
    throw error;
  });
  return {
    target,
    chain,
    stop: async () => {
      await chain.stop();
      await target.close();
    },
  };
}
