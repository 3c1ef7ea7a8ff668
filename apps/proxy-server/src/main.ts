import { Logger } from '@nestjs/common';
import { enabledLogLevels } from '@app/protocol';
import { createServerApp, listen, serverSettings } from './app.js';
import { loadServerConfig } from './config/server.config.js';

/** Starts proxy-server on SERVER_LISTEN_HOST:SERVER_LISTEN_PORT. */
async function bootstrap(): Promise<void> {
  // Checked before Nest boots, so a bad variable stops the app with just
  // the message naming it (the app module validates the same way).
  loadServerConfig(process.env);
  const levels = enabledLogLevels(process.env.LOG_LEVEL);
  const app = await createServerApp({ logger: levels });
  const { listenHost, listenPort } = serverSettings(app);
  const url = await listen(app, listenPort, listenHost);
  // Scripts and tests wait for this line on stdout, whatever LOG_LEVEL says.
  if (levels.includes('log')) {
    new Logger('proxy-server').log(`Listening on ${url}`);
  } else {
    console.log(`proxy-server: Listening on ${url}`);
  }
}

bootstrap().catch((error: unknown) => {
  console.error(
    `proxy-server could not start: ${error instanceof Error ? error.message : String(error)}`,
  );
  process.exit(1);
});
