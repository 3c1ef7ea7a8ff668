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
  DEFAULT_GATEWAY_LISTEN_PORT,
  DEFAULT_GATEWAY_MAX_BODY_BYTES,
  DEFAULT_REGION,
  DEFAULT_SERVER_LISTEN_PORT,
  DEFAULT_SERVICE,
  GATEWAY_TIMEOUT_MS,
  LOCAL_DEV_ACCESS_KEY_ID,
  LOCAL_DEV_SECRET_ACCESS_KEY,
  LOG_LEVELS,
  validateEnv,
} from '@app/protocol';

/**
 * Environment strings to numbers. Only plain decimal integers convert;
 * anything else becomes NaN so the integer check refuses it, naming the variable
 * (`Number('')` would silently be 0, `Number('1e3')` 1000).
 */
const ToInt = () =>
  Transform(({ value }: { value: unknown }) => {
    if (value === undefined || value === '') return undefined;
    return typeof value === 'string' && /^\s*\d+\s*$/.test(value)
      ? Number(value)
      : Number.NaN;
  });

/** One integer check with one message (IsInt + Min + Max would repeat themselves for `abc`). */
const IsIntIn = (min: number, max: number, message: string) =>
  ValidateBy({
    name: 'isIntIn',
    validator: {
      validate: (value: unknown) =>
        Number.isInteger(value) &&
        (value as number) >= min &&
        (value as number) <= max,
      defaultMessage: () => message,
    },
  });

/** The environment variables the gateway reads (GATEWAY_CREDENTIALS apart: see below). */
class GatewayEnv {
  @IsOptional()
  @IsString()
  @Matches(/^[^\s/]+$/, {
    message: 'GATEWAY_LISTEN_HOST must be a host name or IP address',
  })
  GATEWAY_LISTEN_HOST?: string;

  @IsOptional()
  @ToInt()
  @IsIntIn(
    0,
    65535,
    'GATEWAY_LISTEN_PORT must be a port number, 0 to 65535 (0 = any free port)',
  )
  GATEWAY_LISTEN_PORT?: number;

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
  @IsIntIn(
    1,
    1024 * 1024 * 1024,
    'GATEWAY_MAX_BODY_BYTES must be a whole number of bytes, 1 to 1073741824',
  )
  GATEWAY_MAX_BODY_BYTES?: number;

  @IsOptional()
  @ToInt()
  @IsIntIn(
    1,
    3_600_000,
    'GATEWAY_TIMEOUT_MS must be a whole number of milliseconds, 1 to 3600000',
  )
  GATEWAY_TIMEOUT_MS?: number;

  @IsOptional()
  @IsUrl(
    {
      require_tld: false,
      require_protocol: true,
      protocols: ['http', 'https'],
    },
    {
      message:
        'GATEWAY_UPSTREAM_URL must be an http(s) URL such as http://127.0.0.1:9090',
    },
  )
  GATEWAY_UPSTREAM_URL?: string;

  @IsOptional()
  @Matches(/^\/?[A-Za-z0-9_-]*$/, {
    message:
      'GATEWAY_STAGE must be a stage name of letters, digits, "-" and "_" (such as prod), or empty for none',
  })
  GATEWAY_STAGE?: string;

  @IsOptional()
  @ToInt()
  @IsIntIn(
    0,
    60_000,
    'GATEWAY_LATENCY_MS must be a whole number of milliseconds, 0 to 60000',
  )
  GATEWAY_LATENCY_MS?: number;

  @IsOptional()
  @IsIn([...LOG_LEVELS, 'info'], {
    message: `LOG_LEVEL must be one of ${[...LOG_LEVELS, 'info'].join(', ')}`,
  })
  LOG_LEVEL?: string;
}

/**
 * Parses `AKID:SECRET,AKID2:SECRET2`. Checked by hand rather than by
 * class-validator because validateEnv quotes the bad value in its message,
 * and this one holds secrets: errors name the entry, never its content.
 */
export function parseCredentials(
  raw: string | undefined,
): ReadonlyMap<string, string> {
  if (raw === undefined || raw.trim() === '') {
    return new Map([[LOCAL_DEV_ACCESS_KEY_ID, LOCAL_DEV_SECRET_ACCESS_KEY]]);
  }
  const credentials = new Map<string, string>();
  raw.split(',').forEach((entry, index) => {
    const pair = entry.trim();
    const colon = pair.indexOf(':');
    const id = colon === -1 ? '' : pair.slice(0, colon).trim();
    const secret = colon === -1 ? '' : pair.slice(colon + 1).trim();
    if (!/^[A-Za-z0-9]+$/.test(id) || secret === '') {
      throw new Error(
        `Invalid configuration:\n  GATEWAY_CREDENTIALS: entry ${index + 1} must be ACCESS_KEY_ID:SECRET_ACCESS_KEY ` +
          '(access key id of letters and digits, non-empty secret; entries separated by commas; value not shown)',
      );
    }
    credentials.set(id, secret);
  });
  return credentials;
}

/** The gateway's settings, validated once at start-up. */
export const gatewayConfig = registerAs('gateway', () => {
  const env = validateEnv(GatewayEnv, process.env);
  const upstream = new URL(
    env.GATEWAY_UPSTREAM_URL ??
      `http://127.0.0.1:${DEFAULT_SERVER_LISTEN_PORT}`,
  );
  const stage = (env.GATEWAY_STAGE ?? '').replace(/^\//, '');
  return {
    listenHost: env.GATEWAY_LISTEN_HOST ?? '127.0.0.1',
    listenPort: env.GATEWAY_LISTEN_PORT ?? DEFAULT_GATEWAY_LISTEN_PORT,
    region: env.AWS_REGION ?? DEFAULT_REGION,
    service: env.SERVICE ?? DEFAULT_SERVICE,
    credentials: parseCredentials(process.env.GATEWAY_CREDENTIALS),
    maxBodyBytes: env.GATEWAY_MAX_BODY_BYTES ?? DEFAULT_GATEWAY_MAX_BODY_BYTES,
    timeoutMs: env.GATEWAY_TIMEOUT_MS ?? GATEWAY_TIMEOUT_MS,
    /** Origin the pool connects to, e.g. `http://127.0.0.1:9090`. */
    upstreamOrigin: upstream.origin,
    /** Path prefix of the upstream URL, without trailing slash ('' for none). */
    upstreamBasePath: upstream.pathname.replace(/\/+$/, ''),
    /** Stage name without slashes; '' when requests are not under a stage. */
    stage,
    latencyMs: env.GATEWAY_LATENCY_MS ?? 0,
    logLevel: env.LOG_LEVEL ?? 'log',
  };
});

export type GatewayConfig = ReturnType<typeof gatewayConfig>;
