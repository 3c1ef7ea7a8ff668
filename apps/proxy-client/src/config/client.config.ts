import { registerAs } from '@nestjs/config';
import { Transform } from 'class-transformer';
import {
  IsIn,
  IsOptional,
  IsString,
  IsUrl,
  Matches,
  ValidateBy,
} from 'class-validator';
import {
  DEFAULT_CHUNK_SIZE,
  DEFAULT_CLIENT_LISTEN_HOST,
  DEFAULT_CLIENT_LISTEN_PORT,
  DEFAULT_GATEWAY_LISTEN_PORT,
  DEFAULT_MAX_BODY_SIZE,
  DEFAULT_REGION,
  DEFAULT_SERVICE,
  LOG_LEVELS,
  MAX_CHUNK_SIZE,
  validateEnv,
} from '@app/protocol';

/**
 * Environment strings to numbers. Only plain decimal integers convert;
 * anything else becomes NaN so `@IsInt` refuses it with the variable's name
 * (`Number('')` would silently be 0, `Number('1e3')` 1000).
 */
const ToInt = () =>
  Transform(({ value }: { value: unknown }) => {
    if (value === undefined || value === '') return undefined;
    return typeof value === 'string' && /^\s*-?\d+\s*$/.test(value)
      ? Number(value)
      : Number.NaN;
  });

/** An integer within [min, max], with one message saying so (not one per failed rule). */
const IntInRange = (min: number, max: number, message: string) =>
  ValidateBy({
    name: 'intInRange',
    validator: {
      validate: (value: unknown) =>
        Number.isInteger(value) &&
        (value as number) >= min &&
        (value as number) <= max,
      defaultMessage: () => message,
    },
  });

/** The environment variables proxy-client reads, validated at start-up. */
class ClientEnv {
  @IsOptional()
  @IsString()
  @Matches(/^[^\s/]+$/, {
    message: 'CLIENT_LISTEN_HOST must be a host name or IP address',
  })
  CLIENT_LISTEN_HOST?: string;

  @IsOptional()
  @ToInt()
  @IntInRange(
    0,
    65535,
    'CLIENT_LISTEN_PORT must be an integer from 0 to 65535 (0 = any free port)',
  )
  CLIENT_LISTEN_PORT?: number;

  @IsOptional()
  @IsUrl(
    {
      require_tld: false,
      require_protocol: true,
      protocols: ['http', 'https'],
    },
    {
      message:
        'API_GATEWAY_URL must be an http(s) URL such as https://abc.execute-api.us-east-1.amazonaws.com/prod',
    },
  )
  API_GATEWAY_URL?: string;

  @IsOptional()
  @Matches(/^[a-z]{2}(-[a-z]+)+-\d+$/, {
    message: 'AWS_REGION must be an AWS region such as us-east-1',
  })
  AWS_REGION?: string;

  @IsOptional()
  @Matches(/^[A-Za-z0-9-]+$/, {
    message: 'SERVICE must be a SigV4 service name such as execute-api',
  })
  SERVICE?: string;

  @IsOptional()
  @ToInt()
  @IntInRange(
    1024,
    MAX_CHUNK_SIZE,
    `CHUNK_SIZE must be a whole number of bytes from 1024 to ${MAX_CHUNK_SIZE} (10 MiB, API Gateway's payload limit)`,
  )
  CHUNK_SIZE?: number;

  @IsOptional()
  @ToInt()
  @IntInRange(
    0,
    Number.MAX_SAFE_INTEGER,
    'MAX_BODY_SIZE must be a whole number of bytes',
  )
  MAX_BODY_SIZE?: number;

  @IsOptional()
  @ToInt()
  @IntInRange(0, 20, 'GATEWAY_MAX_RETRIES must be an integer from 0 to 20')
  GATEWAY_MAX_RETRIES?: number;

  @IsOptional()
  @ToInt()
  @IntInRange(
    1,
    60_000,
    'GATEWAY_RETRY_BASE_MS must be an integer from 1 to 60000 (milliseconds)',
  )
  GATEWAY_RETRY_BASE_MS?: number;

  @IsOptional()
  @ToInt()
  @IntInRange(
    1000,
    3_600_000,
    'GATEWAY_CALL_TIMEOUT_MS must be an integer from 1000 to 3600000 (milliseconds)',
  )
  GATEWAY_CALL_TIMEOUT_MS?: number;

  @IsOptional()
  @ToInt()
  @IntInRange(
    1000,
    86_400_000,
    'REQUEST_TIMEOUT_MS must be an integer from 1000 to 86400000 (milliseconds)',
  )
  REQUEST_TIMEOUT_MS?: number;

  @IsOptional()
  @IsIn([...LOG_LEVELS, 'info'], {
    message: `LOG_LEVEL must be one of ${[...LOG_LEVELS, 'info'].join(', ')}`,
  })
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
  logLevel: string;
}

/** Reads and checks the environment; throws naming every bad variable. */
export function loadClientSettings(
  env: Record<string, string | undefined> = process.env,
): ClientSettings {
  const e = validateEnv(ClientEnv, env);
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
    logLevel: e.LOG_LEVEL ?? 'log',
  };
}

/** The `client` config namespace, injected as `ConfigType<typeof clientConfig>`. */
export const clientConfig = registerAs('client', () => loadClientSettings());
