export * from './dto.js';
export * from './errors.js';
export * from './headers.js';
export * from './hop-by-hop.js';
export * from './limits.js';
export * from './paths.js';
export * from './validation.js';
export * from './log-level.js';
