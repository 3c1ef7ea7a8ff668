import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { enabledLogLevels } from '@app/protocol';
import { createClientApp } from './app.js';

/**
 * Starts proxy-client. Prints `Listening on http://HOST:PORT` with the real
 * port (tests start it on port 0 and read that line), and exits with a
 * one-line reason on a bad configuration or a port that cannot be bound.
 */
async function bootstrap(): Promise<void> {
  const logger = new Logger('proxy-client');
  const { app, listener } = await createClientApp({
    logger: enabledLogLevels(process.env.LOG_LEVEL),
  });
  app.enableShutdownHooks();
  try {
    await app.listen();
  } catch (error) {
    await app.close();
    const e = error as NodeJS.ErrnoException;
    throw new Error(
      `Cannot listen (${e.message}): set CLIENT_LISTEN_HOST/CLIENT_LISTEN_PORT to a free address, or CLIENT_LISTEN_PORT=0 for any free port.`,
      { cause: error },
    );
  }
  const { url } = listener.address();
  logger.log(`Listening on ${url}`);
  logger.log(`Try: curl -x ${url} http://example.com/`);
}

bootstrap().catch((error: unknown) => {
  console.error(
    `proxy-client failed to start: ${error instanceof Error ? error.message : String(error)}`,
  );
  process.exit(1);
});
