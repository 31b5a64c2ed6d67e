/**
 * registry: the OCI Distribution protocol (Distribution Spec v1.1 and Docker Registry HTTP API
 * v2). It owns the route table and error codes (shared by server and client), the registry
 * server's store (store.ts; uploads are hashed in a worker thread, hasher.ts + hash-worker.ts,
 * through reused shared buffers, slabs.ts) and its HTTP handlers (server.ts), the registry's
 * garbage collection, and the pull/push/login client (RegistryClient: client.ts, auth.ts,
 * session.ts, pull.ts, push.ts), and the hub around
 * the server (hub.ts): htpasswd users, access rules and Docker's token flow (htpasswd.ts,
 * access.ts, token.ts, guard.ts), TLS (tls.ts), the web UI (ui.ts) and the v1 search API
 * (search.ts). It does not own blob bytes (content/ verifies and stores them) or image semantics
 * beyond what a manifest references (image/).
 *
 * Lifecycle: open → serve → (pushes: upload → verify → link → manifest) → gc → close.
 *
 *   const running = await serveRegistry({ root: '/var/lib/baleia/registry', host: '127.0.0.1', port: 5000 });
 *   // skopeo copy oci:dir:tag docker://127.0.0.1:5000/repo:tag
 *   await running.registry.store.collectGarbage({ gracePeriodMs: 3600_000 });
 *   await running.close();
 *
 *   // With users, tokens, TLS, the web UI at / and /v1/search:
 *   const hub = await serveHub({ root, port: 5000, auth: { mode: 'token', htpasswd: 'users.htpasswd' }, tlsFiles });
 *
 * On disk, under the registry root (`--root`, default /var/lib/baleia/registry):
 *
 *   <root>/
 *     content/blobs/sha256/<hex>                 every blob and manifest, verified (ContentStore)
 *     content/ingest/<random>/                   single-request pushes in flight (wiped on start)
 *     uploads/<uuid>/state.json                  {id, name, startedAt, offset}: acknowledged bytes
 *     uploads/<uuid>/data                        the upload so far (made by its first chunk); survives restarts
 *     repositories/<name…>/                      <name> split on "/" (components never start with "_")
 *       _layers/sha256/<hex>                     link: this repository may serve the blob
 *       _manifests/revisions/sha256/<hex>        {mediaType, size, subject?}: a manifest of the repository
 *       _manifests/tags/<tag>                    the digest the tag points at
 *       _referrers/sha256/<subject-hex>/<hex>    descriptor of a manifest whose subject is <subject>
 *     auth/token.key                             HMAC-SHA256 key of bearer tokens (0600, token mode)
 *     tls/ca/registry.crt, tls/registry.key      a `--tls-self-signed` certificate and its key
 *
 * A blob is visible only after it is hashed and renamed into content/ and then linked; an upload
 * is never visible. Durability: an upload's data and state are scratch and not fsynced (a killed
 * server keeps them; a power cut may lose an upload in flight, and opening the store drops one
 * whose data is shorter than its state says); a finished blob is fsynced once before its rename
 * into content/ (skipped when the same blob is already there); links are written without fsync
 * and their directory is synced once by the manifest PUT that relies on them; manifests,
 * revisions and tags are written atomically and fsynced.
 *
 * Answers before work, only where nothing is lost: a POST is answered before the upload's
 * directory is made (its next request waits for it under the upload's lock; a crash in between
 * only makes the client start the upload again). The final PUT answers 201 only after the blob's
 * fsync, rename and link: a blob a client was told is stored survives a crash.
 *
 * Garbage collection marks every revision of every repository and what it
 * references, and sweeps the rest once both the blob and its newest link are older than a grace
 * period. Run the offline `baleia registry gc` only while no server uses the same root.
 */
export { errorCodes, errorBody, parseErrorBody, registryError, registryErrorOf, type ErrorCode, type RegistryErrorInfo } from './errors.js';
export { checkDigest, checkName, checkTag, isName, isTag, parseReference, type Reference } from './names.js';
export { matchRoute, paths, routeAction, type RouteMatch, type RouteName } from './routes.js';
export { mediaTypes, manifestMediaTypes, maxManifestSize, parseManifest, type Descriptor, type ParsedManifest } from './manifests.js';
export { RegistryStore, rangeHeader, type GcOptions, type GcReport, type UploadState } from './store.js';
export { Registry, serveRegistry, type AccessRequest, type FrontendRequest, type RegistryOptions, type RunningRegistry, type ServeOptions } from './server.js';
export { serveHub, type HubAuthOptions, type HubOptions, type RunningHub } from './hub.js';
export { addUser, checkUserName, defaultBcryptCost, Htpasswd } from './htpasswd.js';
export { AccessPolicy, loadAccessRules, parseAccessRules, type AccessRule } from './access.js';
export { RegistryGuard, type AuthMode } from './guard.js';
export { TokenSigner, type TokenClaims } from './token.js';
export { ensureSelfSignedCert, type SelfSignedCert } from './tls.js';
export { searchRepositories, type SearchPage, type SearchResult } from './search.js';
export { RegistryClient, registryHostOf, type RegistryClientOptions, type PullRequest, type PushRequest } from './client.js';
export { decodeRegistryAuthHeader, parseChallenges, type RegistryAuth } from './auth.js';
export { type ProgressEvent } from './pull.js';
