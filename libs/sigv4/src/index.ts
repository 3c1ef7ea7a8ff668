export * from './authorization-header.js';
export * from './canonical-request.js';
export * from './credentials.js';
export * from './refusals.js';
export * from './sigv4-verifier.js';
