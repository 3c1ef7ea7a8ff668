/** Defaults and bounds shared by client, server and gateway. */
export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/** Request and response chunk size (bytes) unless configured otherwise. */
export const DEFAULT_CHUNK_SIZE = MiB;
/** API Gateway's hard payload limit: no chunk may be larger. */
export const MAX_CHUNK_SIZE = 10 * MiB;
/** Body size limit the proxy enforces unless MAX_BODY_SIZE says otherwise. */
export const DEFAULT_MAX_BODY_SIZE = 5 * GiB;
/** Idle connections are forgotten after this long. */
export const DEFAULT_CONNECTION_TTL_MS = 5 * 60_000;
/** Long-poll bound for a response chunk; stays safely under API Gateway's 29 s. */
export const DEFAULT_RESPONSE_WAIT_MS = 20_000;
/** API Gateway's integration timeout. */
export const GATEWAY_TIMEOUT_MS = 29_000;
/** The largest long-poll the server allows, leaving headroom under the gateway timeout. */
export const MAX_RESPONSE_WAIT_MS = 25_000;
/** How long the server waits for a target's response. */
export const DEFAULT_TARGET_TIMEOUT_MS = 5 * 60_000;

export const DEFAULT_CLIENT_LISTEN_HOST = '127.0.0.1';
export const DEFAULT_CLIENT_LISTEN_PORT = 8080;
export const DEFAULT_SERVER_LISTEN_PORT = 9090;
export const DEFAULT_GATEWAY_LISTEN_PORT = 9080;
/** The body limit of the API Gateway setup this project was first written for. */
export const DEFAULT_GATEWAY_MAX_BODY_BYTES = 2 * MiB;
export const DEFAULT_SERVICE = 'execute-api';
export const DEFAULT_REGION = 'us-east-1';

/**
 * Credentials of the local development setup (`npm start`, tests, benchmarks).
 * They only ever authenticate against the local gateway stand-in; they are
 * not, and never were, valid AWS credentials.
 */
export const LOCAL_DEV_ACCESS_KEY_ID = 'AKIDCHUNKGATELOCALDEV';
export const LOCAL_DEV_SECRET_ACCESS_KEY =
  'chunkgate-local-development-secret-key';
