import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { AppName } from '../../../../scripts/chain.mjs';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

/** A lock older than this was left by a build that died: take it over. */
const STALE_LOCK_MS = 5 * 60_000;

/** Where `npx nest build <app>` puts the app, as scripts/chain.mjs starts it. */
export function builtMain(app: AppName, root = ROOT): string {
  return join(root, 'dist', 'apps', app, 'main.js');
}

/**
 * Builds each app whose `dist/apps/<app>/main.js` is missing, so that a
 * spec starting the real apps also runs on its own (`npx vitest run
 * apps/proxy-client`), not only after `npm test` built everything. An
 * existing build is used as it is, even if older than the sources: keeping
 * it current is `npm run build`'s job.
 *
 * Spec files run in parallel workers: a lock directory per app lets one
 * worker build while the others wait for it, instead of two builds writing
 * the same files at once.
 */
export async function ensureBuilt(
  apps: readonly AppName[],
  root = ROOT,
): Promise<void> {
  for (const app of apps) await ensureOne(app, root);
}

async function ensureOne(app: AppName, root: string): Promise<void> {
  const lock = join(root, 'dist', `.building-${app}`);
  // (a main.js beside a lock may be one being written: wait for the lock)
  if (existsSync(builtMain(app, root)) && !existsSync(lock)) return;
  await mkdir(join(root, 'dist'), { recursive: true });
  while (!(await tryLock(lock))) {
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  try {
    // Another worker may have built it while this one waited.
    if (existsSync(builtMain(app, root))) return;
    try {
      await run('npx', ['nest', 'build', app], {
        cwd: root,
        maxBuffer: 64 * 1024 * 1024,
      });
    } catch (error) {
      const { stdout = '', stderr = '' } = error as {
        stdout?: string;
        stderr?: string;
      };
      throw new Error(
        `\`npx nest build ${app}\` failed:\n${stdout}${stderr}`.trimEnd(),
      );
    }
    if (!existsSync(builtMain(app, root))) {
      throw new Error(
        `\`npx nest build ${app}\` succeeded but ${builtMain(app, root)} is missing.`,
      );
    }
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

/** Takes the lock (an atomic mkdir); false while another worker holds it. */
async function tryLock(lock: string): Promise<boolean> {
  try {
    await mkdir(lock);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const age = await stat(lock).then(
    (s) => Date.now() - s.mtimeMs,
    () => 0, // released meanwhile: try again
  );
  if (age > STALE_LOCK_MS) await rm(lock, { recursive: true, force: true });
  return false;
}
