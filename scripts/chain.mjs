// Starts chunkgate's built apps as child processes and wires them together.
// One place for this logic: `npm start` (scripts/start-local.mjs), the
// end-to-end tests (test/support) and the benchmark all use it.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The local development credentials (see libs/protocol/src/limits.ts). */
export const LOCAL_DEV_ACCESS_KEY_ID = 'AKIDCHUNKGATELOCALDEV';
export const LOCAL_DEV_SECRET_ACCESS_KEY =
  'chunkgate-local-development-secret-key';

const LISTENING = /Listening on (http:\/\/[\w.:[\]-]+)/;

/**
 * Environment for a child app: the parent's, minus anything that would make
 * the AWS SDK look for real credentials (profiles, SSO, instance metadata),
 * plus `extra`.
 */
function childEnv(extra) {
  const env = { ...process.env };
  for (const name of Object.keys(env)) {
    if (/^(AWS_|CHUNKGATE_)/.test(name) || name === 'NODE_OPTIONS')
      delete env[name];
  }
  return { ...env, NO_COLOR: '1', AWS_EC2_METADATA_DISABLED: 'true', ...extra };
}

/**
 * Starts `dist/apps/<app>/main.js` and resolves once it logged its
 * `Listening on http://HOST:PORT` line (apps started with port 0 report the
 * port they got). Rejects with the app's output if it exits first.
 *
 * @param {'proxy-server' | 'proxy-client' | 'gateway'} app
 * @param {Record<string, string>} env
 * @param {{ echo?: boolean, nodeArgs?: string[], startTimeoutMs?: number }} [options]
 */
export async function startApp(app, env, options = {}) {
  const main = `${ROOT}dist/apps/${app}/main.js`;
  if (!existsSync(main)) {
    throw new Error(`${main} is missing: run \`npm run build\` first.`);
  }
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), main], {
    cwd: ROOT,
    env: childEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const onData = (data) => {
    output += data;
    if (output.length > 1_000_000) output = output.slice(-500_000);
    if (options.echo) {
      for (const line of String(data).split('\n'))
        if (line) process.stdout.write(`[${app}] ${line}\n`);
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);

  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      child.kill('SIGKILL');
      reject(
        new Error(
          `${app} did not start within ${options.startTimeoutMs ?? 20_000} ms:\n${output}`,
        ),
      );
    }, options.startTimeoutMs ?? 20_000);
    const onOut = () => {
      const match = LISTENING.exec(output);
      if (match) {
        cleanup();
        resolve(match[1]);
      }
    };
    const onExit = (code, signal) => {
      cleanup();
      reject(
        new Error(
          `${app} exited (${signal ?? code}) before listening:\n${output}`,
        ),
      );
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout.off('data', onOut);
      child.off('exit', onExit);
    };
    child.stdout.on('data', onOut);
    child.on('exit', onExit);
  });

  return {
    app,
    url,
    port: Number(new URL(url).port),
    child,
    /** Everything the app printed so far. */
    output: () => output,
    /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
    async stop(graceMs = 5_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Starts server, gateway and client, each on the given port (0 = any free
 * port), the gateway forwarding to the server and the client signing with
 * the local development credentials.
 *
 * @param {{
 *   serverPort?: number, gatewayPort?: number, clientPort?: number,
 *   stage?: string,
 *   server?: Record<string, string>, gateway?: Record<string, string>, client?: Record<string, string>,
 *   echo?: boolean,
 * }} [options]
 */
export async function startChain(options = {}) {
  const started = [];
  try {
    const server = await startApp(
      'proxy-server',
      {
        SERVER_LISTEN_PORT: String(options.serverPort ?? 0),
        ...options.server,
      },
      { echo: options.echo },
    );
    started.push(server);
    const gateway = await startApp(
      'gateway',
      {
        GATEWAY_LISTEN_PORT: String(options.gatewayPort ?? 0),
        GATEWAY_UPSTREAM_URL: server.url,
        ...(options.stage ? { GATEWAY_STAGE: options.stage } : {}),
        ...options.gateway,
      },
      { echo: options.echo },
    );
    started.push(gateway);
    const gatewayUrl = options.stage
      ? `${gateway.url}/${options.stage}`
      : gateway.url;
    const client = await startApp(
      'proxy-client',
      {
        CLIENT_LISTEN_PORT: String(options.clientPort ?? 0),
        API_GATEWAY_URL: gatewayUrl,
        AWS_ACCESS_KEY_ID: LOCAL_DEV_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY: LOCAL_DEV_SECRET_ACCESS_KEY,
        ...options.client,
      },
      { echo: options.echo },
    );
    started.push(client);
    return {
      server,
      gateway,
      gatewayUrl,
      client,
      /** The URL applications use as their HTTP proxy. */
      proxyUrl: client.url,
      async stop() {
        await Promise.all(started.map((app) => app.stop()));
      },
    };
  } catch (error) {
    await Promise.all(started.map((app) => app.stop()));
    throw error;
  }
}
