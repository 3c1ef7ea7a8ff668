import { registerAs } from '@nestjs/config';
import { IsOptional, Matches, ValidateBy } from 'class-validator';
import {
  AwsRegion,
  EmptyIsUnset,
  DEFAULT_GATEWAY_LISTEN_PORT,
  DEFAULT_GATEWAY_MAX_BODY_BYTES,
  DEFAULT_REGION,
  DEFAULT_SERVER_LISTEN_PORT,
  DEFAULT_SERVICE,
  GATEWAY_TIMEOUT_MS,
  HostName,
  HttpUrl,
  LogLevel,
  SigV4Service,
  WholeNumber,
  validateEnv,
} from '@app/protocol';
import { parseCredentialList } from '@app/sigv4';
import { FAULT_KINDS, isFaultKind } from '../faults/fault-plan.js';

/** Splits GATEWAY_FAULT_KINDS into its entries, trimmed, empty ones dropped. */
function faultKindList(raw: string): string[] {
  return raw
    .split(',')
    .map((kind) => kind.trim())
    .filter((kind) => kind !== '');
}

/** The environment variables the gateway reads (GATEWAY_CREDENTIALS apart: see below). */
class GatewayEnv {
  @HostName()
  GATEWAY_LISTEN_HOST?: string;

  /** 0 picks any free port. */
  @WholeNumber(0, 65535, 'port')
  GATEWAY_LISTEN_PORT?: number;

  @AwsRegion()
  AWS_REGION?: string;

  @SigV4Service()
  SERVICE?: string;

  @WholeNumber(1, 1024 * 1024 * 1024, 'bytes')
  GATEWAY_MAX_BODY_BYTES?: number;

  @WholeNumber(1, 3_600_000, 'milliseconds')
  GATEWAY_TIMEOUT_MS?: number;

  @HttpUrl('http://127.0.0.1:9090')
  GATEWAY_UPSTREAM_URL?: string;

  @IsOptional()
  @Matches(/^\/?[A-Za-z0-9_-]*$/, {
    message:
      'must be a stage name of letters, digits, "-" and "_" (such as prod), or empty for none',
  })
  GATEWAY_STAGE?: string;

  @WholeNumber(0, 60_000, 'milliseconds')
  GATEWAY_LATENCY_MS?: number;

  /** Probability that a call is faulty: a decimal from 0 to 1. */
  @EmptyIsUnset()
  @IsOptional()
  @Matches(/^\s*(0(\.\d*)?|1(\.0*)?|\.\d+)\s*$/, {
    message: 'must be a probability from 0 to 1, such as 0.1',
  })
  GATEWAY_FAULT_RATE?: string;

  @EmptyIsUnset()
  @IsOptional()
  @ValidateBy({
    name: 'faultKinds',
    validator: {
      validate: (value: unknown) =>
        typeof value === 'string' &&
        faultKindList(value).length > 0 &&
        faultKindList(value).every(isFaultKind),
      defaultMessage: () =>
        `must be a comma-separated list of fault kinds from ${FAULT_KINDS.join(', ')}`,
    },
  })
  GATEWAY_FAULT_KINDS?: string;

  @WholeNumber(0, 60_000, 'milliseconds')
  GATEWAY_FAULT_LATENCY_MS?: number;

  @EmptyIsUnset()
  @IsOptional()
  @Matches(/^[\x21-\x7e]{1,100}$/, {
    message: 'must be 1 to 100 printable characters without spaces, such as 42',
  })
  GATEWAY_FAULT_SEED?: string;

  @LogLevel()
  LOG_LEVEL?: string;
}

/** Parses GATEWAY_CREDENTIALS (`AKID:SECRET,AKID2:SECRET2`); see {@link parseCredentialList}. */
export function parseCredentials(
  raw: string | undefined,
): ReadonlyMap<string, string> {
  return parseCredentialList(raw, 'GATEWAY_CREDENTIALS');
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
    /** Fault injection, off unless GATEWAY_FAULT_RATE is above 0. */
    faults: {
      rate: Number(env.GATEWAY_FAULT_RATE ?? 0),
      kinds: env.GATEWAY_FAULT_KINDS
        ? faultKindList(env.GATEWAY_FAULT_KINDS).filter(isFaultKind)
        : [...FAULT_KINDS],
      latencyMs: env.GATEWAY_FAULT_LATENCY_MS ?? 2000,
      seed: env.GATEWAY_FAULT_SEED,
    },
    logLevel: env.LOG_LEVEL ?? 'log',
  };
});

export type GatewayConfig = ReturnType<typeof gatewayConfig>;
