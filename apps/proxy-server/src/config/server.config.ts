import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { registerAs } from '@nestjs/config';
import { IsIn, IsOptional, IsString } from 'class-validator';
import {
  DEFAULT_CHUNK_SIZE,
  DEFAULT_CONNECTION_TTL_MS,
  DEFAULT_MAX_BODY_SIZE,
  DEFAULT_RESPONSE_WAIT_MS,
  DEFAULT_SERVER_LISTEN_PORT,
  DEFAULT_TARGET_TIMEOUT_MS,
  EmptyIsUnset,
  LogLevel,
  MAX_CHUNK_SIZE,
  MAX_RESPONSE_WAIT_MS,
  MiB,
  WholeNumber,
  validateEnv,
  DEFAULT_CONNECT_ALLOWED_PORTS,
  DEFAULT_TUNNEL_CONNECT_TIMEOUT_MS,
  DEFAULT_TUNNEL_IDLE_TIMEOUT_MS,
  DEFAULT_TUNNEL_WAIT_MS,
  AwsRegion,
  DEFAULT_REGION,
  DEFAULT_SERVICE,
  SigV4Service,
} from '@app/protocol';
import { parseCredentialList } from '@app/sigv4';
import {
  CidrList,
  DEFAULT_TARGET_DENY_CIDRS,
  HostPatternList,
  parseCidrList,
  parseHostPatterns,
} from '../target/target-rules.js';
import type { TargetRules } from '../target/target-guard.js';
import { parsePortList, PortList } from '../tunnels/port-list.js';

/** The variables proxy-server reads, as they are validated at start-up. */
class ServerEnv {
  @IsOptional()
  @EmptyIsUnset()
  @IsString()
  SERVER_LISTEN_HOST?: string;

  /** 0 picks any free port. */
  @WholeNumber(0, 65535, 'port')
  SERVER_LISTEN_PORT?: number;

  @WholeNumber(1000, Number.MAX_SAFE_INTEGER, 'milliseconds')
  CONNECTION_TTL_MS?: number;

  /** Capped safely under the API Gateway's 29 s integration timeout. */
  @WholeNumber(1, MAX_RESPONSE_WAIT_MS, 'milliseconds')
  RESPONSE_WAIT_MS?: number;

  @WholeNumber(1, Number.MAX_SAFE_INTEGER, 'milliseconds')
  TARGET_TIMEOUT_MS?: number;

  @WholeNumber(0, Number.MAX_SAFE_INTEGER, 'bytes')
  MAX_BODY_SIZE?: number;

  /** Capped at the API Gateway payload limit. */
  @WholeNumber(1, MAX_CHUNK_SIZE, 'bytes')
  MAX_CHUNK_SIZE?: number;

  @WholeNumber(1024, MAX_CHUNK_SIZE, 'bytes')
  CHUNK_SIZE?: number;

  @WholeNumber(10, Number.MAX_SAFE_INTEGER, 'milliseconds')
  CLEANUP_INTERVAL_MS?: number;

  @WholeNumber(0, Number.MAX_SAFE_INTEGER, 'milliseconds')
  FINISHED_LINGER_MS?: number;

  /** 0 spools every byte of every body. */
  @WholeNumber(0, Number.MAX_SAFE_INTEGER, 'bytes')
  SPOOL_THRESHOLD_BYTES?: number;

  @IsOptional()
  @EmptyIsUnset()
  @IsString()
  SPOOL_DIR?: string;

  /** Comma-separated ports CONNECT tunnels may reach, e.g. `443,8443`. */
  @EmptyIsUnset()
  @PortList()
  CONNECT_ALLOWED_PORTS?: string;

  @WholeNumber(1000, Number.MAX_SAFE_INTEGER, 'milliseconds')
  TUNNEL_IDLE_TIMEOUT_MS?: number;

  /** Capped safely under the API Gateway's 29 s integration timeout. */
  @WholeNumber(1, MAX_RESPONSE_WAIT_MS, 'milliseconds')
  TUNNEL_WAIT_MS?: number;

  /** Answered within one gateway call: capped like the long-polls. */
  @WholeNumber(1, MAX_RESPONSE_WAIT_MS, 'milliseconds')
  TUNNEL_CONNECT_TIMEOUT_MS?: number;

  /** Networks never connected to (default: cloud metadata endpoints). */
  @EmptyIsUnset()
  @CidrList()
  TARGET_DENY_CIDRS?: string;

  /** When set, the only networks connected to. */
  @EmptyIsUnset()
  @CidrList()
  TARGET_ALLOW_CIDRS?: string;

  /** When set, the only host names (and `*.` wildcards) connected to. */
  @EmptyIsUnset()
  @HostPatternList()
  TARGET_ALLOW_HOSTS?: string;

  /** Connections and tunnels held at once; one more is answered 503. */
  @WholeNumber(1, 1_000_000)
  MAX_CONNECTIONS?: number;

  @EmptyIsUnset()
  @IsOptional()
  @IsIn(['none', 'sigv4'], { message: 'must be none or sigv4' })
  SERVER_AUTH?: string;

  @AwsRegion()
  AWS_REGION?: string;

  @SigV4Service()
  SERVICE?: string;

  @EmptyIsUnset()
  @LogLevel()
  LOG_LEVEL?: string;
}

/** Connections and tunnels the server holds at once unless MAX_CONNECTIONS says otherwise. */
export const DEFAULT_MAX_CONNECTIONS = 1000;

/** Served connections are forgotten this long after their last chunk left. */
export const DEFAULT_FINISHED_LINGER_MS = 30_000;
/** Like nginx's client_body_buffer_size: small bodies never touch the disk. */
export const DEFAULT_SPOOL_THRESHOLD_BYTES = 8 * MiB;

/** SPOOL_DIR made absolute (relative to the working directory); default `<tmpdir>/chunkgate-spool`. */
function spoolDirFrom(value: string | undefined): string {
  if (value === undefined) return join(tmpdir(), 'chunkgate-spool');
  return isAbsolute(value) ? value : resolve(value);
}

/** proxy-server's settings, defaults applied. */
export interface ServerConfig {
  /** Interface to listen on; deployments behind a gateway set 0.0.0.0. */
  listenHost: string;
  /** Port to listen on; 0 picks any free port (reported in the Listening line). */
  listenPort: number;
  /** A connection nobody called for this long is released. */
  connectionTtlMs: number;
  /** How long GET /proxy/response waits for a chunk before answering 202. */
  responseWaitMs: number;
  /** How long the target may take to answer, and to send each piece of its body. */
  targetTimeoutMs: number;
  /** Largest request body accepted, declared or received. */
  maxBodySize: number;
  /** Largest request chunk accepted by POST /proxy/chunk. */
  maxChunkSize: number;
  /** Response chunk size when the client does not ask for one. */
  chunkSize: number;
  /** How often expired connections are swept. */
  cleanupIntervalMs: number;
  /**
   * How long a connection whose last response chunk was served is kept (its
   * last chunk only), so that a client whose answer was lost can fetch it
   * again; then the sweep forgets it. Clients need no DELETE.
   */
  finishedLingerMs: number;
  /** Request body bytes a connection holds in memory; the rest goes to a spool file. */
  spoolThresholdBytes: number;
  /** Where spool files go (absolute); this process uses a subfolder of its own. */
  spoolDir: string;
  /** Ports CONNECT tunnels may reach (CONNECT_ALLOWED_PORTS); others are refused with 403. */
  connectAllowedPorts: number[];
  /** A tunnel through which no byte moved for this long is closed by the sweep. */
  tunnelIdleTimeoutMs: number;
  /** How long GET /proxy/tunnel/receive waits for bytes before answering 204. */
  tunnelWaitMs: number;
  /** How long opening a tunnel's TCP connection (DNS and handshake) may take. */
  tunnelConnectTimeoutMs: number;
  /** Which targets may be connected to (the SSRF guard's rules). */
  targetRules: TargetRules;
  /** Connections and tunnels held at once (MAX_CONNECTIONS). */
  maxConnections: number;
  /**
   * SERVER_AUTH=sigv4: the server verifies every call's SigV4 signature
   * itself, with these credentials, region and service; `none` (default)
   * leaves that to the gateway in front of it.
   */
  auth:
    | { kind: 'none' }
    | {
        kind: 'sigv4';
        region: string;
        service: string;
        credentials: ReadonlyMap<string, string>;
      };
  logLevel: string;
}

/** Validates `env` and applies defaults; throws naming every bad variable. */
export function loadServerConfig(
  env: Record<string, string | undefined>,
): ServerConfig {
  const v = validateEnv(ServerEnv, env);
  return {
    listenHost: v.SERVER_LISTEN_HOST ?? '127.0.0.1',
    listenPort: v.SERVER_LISTEN_PORT ?? DEFAULT_SERVER_LISTEN_PORT,
    connectionTtlMs: v.CONNECTION_TTL_MS ?? DEFAULT_CONNECTION_TTL_MS,
    responseWaitMs: v.RESPONSE_WAIT_MS ?? DEFAULT_RESPONSE_WAIT_MS,
    targetTimeoutMs: v.TARGET_TIMEOUT_MS ?? DEFAULT_TARGET_TIMEOUT_MS,
    maxBodySize: v.MAX_BODY_SIZE ?? DEFAULT_MAX_BODY_SIZE,
    maxChunkSize: v.MAX_CHUNK_SIZE ?? MAX_CHUNK_SIZE,
    chunkSize: v.CHUNK_SIZE ?? DEFAULT_CHUNK_SIZE,
    cleanupIntervalMs: v.CLEANUP_INTERVAL_MS ?? 30_000,
    finishedLingerMs: v.FINISHED_LINGER_MS ?? DEFAULT_FINISHED_LINGER_MS,
    spoolThresholdBytes:
      v.SPOOL_THRESHOLD_BYTES ?? DEFAULT_SPOOL_THRESHOLD_BYTES,
    spoolDir: spoolDirFrom(v.SPOOL_DIR),
    connectAllowedPorts: parsePortList(
      v.CONNECT_ALLOWED_PORTS ?? DEFAULT_CONNECT_ALLOWED_PORTS,
    ),
    tunnelIdleTimeoutMs:
      v.TUNNEL_IDLE_TIMEOUT_MS ?? DEFAULT_TUNNEL_IDLE_TIMEOUT_MS,
    tunnelWaitMs: v.TUNNEL_WAIT_MS ?? DEFAULT_TUNNEL_WAIT_MS,
    tunnelConnectTimeoutMs:
      v.TUNNEL_CONNECT_TIMEOUT_MS ?? DEFAULT_TUNNEL_CONNECT_TIMEOUT_MS,
    targetRules: {
      denyCidrs: parseCidrList(
        v.TARGET_DENY_CIDRS ?? DEFAULT_TARGET_DENY_CIDRS,
      ),
      allowCidrs:
        v.TARGET_ALLOW_CIDRS === undefined
          ? undefined
          : parseCidrList(v.TARGET_ALLOW_CIDRS),
      allowHosts:
        v.TARGET_ALLOW_HOSTS === undefined
          ? undefined
          : parseHostPatterns(v.TARGET_ALLOW_HOSTS),
    },
    maxConnections: v.MAX_CONNECTIONS ?? DEFAULT_MAX_CONNECTIONS,
    auth:
      v.SERVER_AUTH === 'sigv4'
        ? {
            kind: 'sigv4',
            region: v.AWS_REGION ?? DEFAULT_REGION,
            service: v.SERVICE ?? DEFAULT_SERVICE,
            // Read apart from validateEnv, whose messages quote values: secrets.
            credentials: parseCredentialList(
              env.SERVER_AUTH_CREDENTIALS,
              'SERVER_AUTH_CREDENTIALS',
            ),
          }
        : { kind: 'none' },
    logLevel: v.LOG_LEVEL ?? 'log',
  };
}

/** The `server` configuration namespace, read from `env`. */
export function serverConfigFrom(env: Record<string, string | undefined>) {
  return registerAs('server', () => loadServerConfig(env));
}

/** The `server` configuration namespace, read from the process environment. */
export const serverConfig = serverConfigFrom(process.env);
