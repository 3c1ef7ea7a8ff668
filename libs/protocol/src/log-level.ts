/** The log levels every app accepts in LOG_LEVEL, least to most verbose. */
export const LOG_LEVELS = ['error', 'warn', 'log', 'debug', 'verbose'] as const;
export type LogLevelName = (typeof LOG_LEVELS)[number];

/**
 * Nest logger levels enabled by LOG_LEVEL: the named level and every level
 * more severe. `info` is accepted as an alias of `log`.
 */
export function enabledLogLevels(level: string | undefined): LogLevelName[] {
  const name =
    (level ?? 'log').toLowerCase() === 'info'
      ? 'log'
      : (level ?? 'log').toLowerCase();
  const index = LOG_LEVELS.indexOf(name as LogLevelName);
  return LOG_LEVELS.slice(
    0,
    (index === -1 ? LOG_LEVELS.indexOf('log') : index) + 1,
  );
}
