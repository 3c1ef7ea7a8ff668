import { registerAs } from '@nestjs/config';
import {
  AwsRegion,
  DEFAULT_CHUNK_SIZE,
  DEFAULT_CLIENT_LISTEN_HOST,
  DEFAULT_CLIENT_LISTEN_PORT,
  DEFAULT_GATEWAY_LISTEN_PORT,
  DEFAULT_MAX_BODY_SIZE,
  DEFAULT_REGION,
  DEFAULT_SERVICE,
  HostName,
  HttpUrl,
  LogLevel,
  MAX_CHUNK_SIZE,
  SigV4Service,
  TrueOrFalse,
  WholeNumber,
  validateEnv,
} from '@app/protocol';

/** Most chunk calls one exchange keeps in flight in either direction (the protocol's `download_window` bound). */
export const MAX_CONCURRENCY = 64;

/** The environment variables proxy-client reads, validated at start-up. */
class ClientEnv {
  @HostName()
  CLIENT_LISTEN_HOST?: string;

  /** 0 picks any free port. */
  @WholeNumber(0, 65535, 'port')
  CLIENT_LISTEN_PORT?: number;

  @HttpUrl('https://abc.execute-api.us-east-1.amazonaws.com/prod')
  API_GATEWAY_URL?: string;

  @AwsRegion()
  AWS_REGION?: string;

  @SigV4Service()
  SERVICE?: string;

  /** Capped at API Gateway's payload limit (10 MiB). */
  @WholeNumber(1024, MAX_CHUNK_SIZE, 'bytes')
  CHUNK_SIZE?: number;

  @WholeNumber(0, Number.MAX_SAFE_INTEGER, 'bytes')
  MAX_BODY_SIZE?: number;

  @WholeNumber(0, 20)
  GATEWAY_MAX_RETRIES?: number;

  @WholeNumber(1, 60_000, 'milliseconds')
  GATEWAY_RETRY_BASE_MS?: number;

  @WholeNumber(1000, 3_600_000, 'milliseconds')
  GATEWAY_CALL_TIMEOUT_MS?: number;

  @WholeNumber(1000, 86_400_000, 'milliseconds')
  REQUEST_TIMEOUT_MS?: number;

  @WholeNumber(1, MAX_CONCURRENCY)
  UPLOAD_CONCURRENCY?: number;

  /** Also the `download_window` the server is told. */
  @WholeNumber(1, MAX_CONCURRENCY)
  DOWNLOAD_CONCURRENCY?: number;

  @TrueOrFalse()
  COMBINED_CALL?: boolean;

  @LogLevel()
  LOG_LEVEL?: string;
}

/** The validated, typed settings of proxy-client. */
export interface ClientSettings {
  listenHost: string;
  /** 0 = any free port; the real one is logged after listening. */
  listenPort: number;
  /** Base URL of the gateway, stage path included, without a trailing slash. */
  gatewayUrl: string;
  region: string;
  service: string;
  /** Upload chunk size and the response chunk size asked of the server. */
  chunkSize: number;
  maxBodySize: number;
  gatewayMaxRetries: number;
  gatewayRetryBaseMs: number;
  /** Bound of one gateway call; above the server's long-poll bound. */
  gatewayCallTimeoutMs: number;
  /** Longest an exchange may go without progress (see RelayService). */
  requestTimeoutMs: number;
  /** Request chunks uploaded at once per exchange (UPLOAD_CONCURRENCY). */
  uploadConcurrency: number;
  /** Response chunks asked for at once per exchange (DOWNLOAD_CONCURRENCY), sent as `download_window`. */
  downloadConcurrency: number;
  /** Open a connection, send its first chunk and get its first response chunk in one `POST /proxy/exchange`. */
  combinedCall: boolean;
  logLevel: string;
  /**
   * `user:password` the application must send as Basic `Proxy-Authorization`
   * (CLIENT_PROXY_AUTH); undefined = no proxy authentication. A secret:
   * never logged, never shown in a configuration error.
   */
  proxyAuth: string | undefined;
}

/**
 * CLIENT_PROXY_AUTH is a secret, so it is checked here rather than by
 * `validateEnv`, whose messages quote the bad value. Basic credentials are
 * `user:password`: a user without `:` (RFC 7617), a non-empty password, no
 * control characters. Returns what is wrong, or undefined.
 */
function proxyAuthProblem(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (/^[^:]+:.+$/.test(value) && !/\p{Cc}/u.test(value)) return undefined;
  return 'CLIENT_PROXY_AUTH=(not shown, a secret): must be user:password, a user name without ":" and a non-empty password, without control characters';
}

/** Reads and checks the environment; throws naming every bad variable. */
export function loadClientSettings(
  env: Record<string, string | undefined> = process.env,
): ClientSettings {
  const authProblem = proxyAuthProblem(env.CLIENT_PROXY_AUTH);
  let e: ClientEnv;
  try {
    e = validateEnv(ClientEnv, env);
  } catch (error) {
    if (authProblem && error instanceof Error) {
      error.message += `\n  ${authProblem}`;
    }
    throw error;
  }
  if (authProblem) throw new Error(`Invalid configuration:\n  ${authProblem}`);
  return {
    listenHost: e.CLIENT_LISTEN_HOST ?? DEFAULT_CLIENT_LISTEN_HOST,
    listenPort: e.CLIENT_LISTEN_PORT ?? DEFAULT_CLIENT_LISTEN_PORT,
    gatewayUrl: (
      e.API_GATEWAY_URL ?? `http://127.0.0.1:${DEFAULT_GATEWAY_LISTEN_PORT}`
    ).replace(/\/+$/, ''),
    region: e.AWS_REGION ?? DEFAULT_REGION,
    service: e.SERVICE ?? DEFAULT_SERVICE,
    chunkSize: e.CHUNK_SIZE ?? DEFAULT_CHUNK_SIZE,
    maxBodySize: e.MAX_BODY_SIZE ?? DEFAULT_MAX_BODY_SIZE,
    gatewayMaxRetries: e.GATEWAY_MAX_RETRIES ?? 5,
    gatewayRetryBaseMs: e.GATEWAY_RETRY_BASE_MS ?? 100,
    gatewayCallTimeoutMs: e.GATEWAY_CALL_TIMEOUT_MS ?? 35_000,
    requestTimeoutMs: e.REQUEST_TIMEOUT_MS ?? 330_000,
    uploadConcurrency: e.UPLOAD_CONCURRENCY ?? 8,
    downloadConcurrency: e.DOWNLOAD_CONCURRENCY ?? 8,
    combinedCall: e.COMBINED_CALL ?? true,
    logLevel: e.LOG_LEVEL ?? 'log',
    proxyAuth: env.CLIENT_PROXY_AUTH || undefined,
  };
}

/** The `client` config namespace, injected as `ConfigType<typeof clientConfig>`. */
export const clientConfig = registerAs('client', () => loadClientSettings());
