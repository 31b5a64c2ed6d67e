/**
 * lib: the domain-free building blocks every module uses — the error class and its kinds, the
 * structured logger, atomic file writes, the resource owner, external commands, ids, sha256
 * digests of large streams computed on a worker thread.
 * It knows nothing of containers or images.
 */
export * from './errors.js';
export * from './logger.js';
export * from './files.js';
export * from './owner.js';
export * from './process.js';
export * from './ids.js';
export * from './paths.js';
export * from './sha256.js';
export * from './duration.js';
