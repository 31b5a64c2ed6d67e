/**
 * api: the Docker Engine API — the server baleiad listens with (node:http, version prefixes,
 * routes, hijacked streams, the error-kind → status table) and the typed client our CLI uses.
 */
export { createApiServer, type ApiServerOptions } from './server.js';
export { apiVersion, minApiVersion, engineVersion, statusOfKind, stdcopyFrame } from './http.js';
