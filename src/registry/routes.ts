/**
 * The route table of the Docker Registry HTTP API v2 / OCI Distribution Spec v1.1 (pure), shared
 * by the server (matching) and, later, the client (building paths). `<name>` may contain `/`, so
 * each route anchors on its fixed tail and the name is whatever precedes it; the name's grammar is
 * checked by the handler so a bad name answers NAME_INVALID rather than a bare 404.
 */

export type RouteName =
  | 'base'
  | 'catalog'
  | 'tags'
  | 'manifest'
  | 'blob'
  | 'uploads'
  | 'upload'
  | 'referrers';

export interface RouteMatch {
  route: RouteName;
  name?: string;
  /** Tag or digest (manifest), digest (blob, referrers), upload id (upload). */
  ref?: string;
}

const table: Array<{ route: RouteName; pattern: RegExp }> = [
  { route: 'base', pattern: /^\/v2\/?$/ },
  { route: 'catalog', pattern: /^\/v2\/_catalog$/ },
  { route: 'tags', pattern: /^\/v2\/(.+)\/tags\/list$/ },
  { route: 'manifest', pattern: /^\/v2\/(.+)\/manifests\/([^/]+)$/ },
  { route: 'uploads', pattern: /^\/v2\/(.+)\/blobs\/uploads\/?$/ },
  { route: 'upload', pattern: /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/ },
  { route: 'blob', pattern: /^\/v2\/(.+)\/blobs\/([^/]+)$/ },
  { route: 'referrers', pattern: /^\/v2\/(.+)\/referrers\/([^/]+)$/ },
];

/** Which route a (decoded) path is, or undefined. */
export function matchRoute(pathname: string): RouteMatch | undefined {
  for (const { route, pattern } of table) {
    const m = pattern.exec(pathname);
    if (m) return { route, name: m[1], ref: m[2] };
  }
  return undefined;
}

/** What a route does to a repository, for the authorization hook (`pull`, `push`, `delete`). */
export function routeAction(route: RouteName, method: string): 'pull' | 'push' | 'delete' | 'catalog' | 'base' {
  if (route === 'base') return 'base';
  if (route === 'catalog') return 'catalog';
  if (method === 'DELETE' && (route === 'manifest' || route === 'blob')) return 'delete';
  if (method === 'GET' || method === 'HEAD') return route === 'upload' ? 'push' : 'pull';
  return 'push';
}

export const paths = {
  base: () => '/v2/',
  catalog: () => '/v2/_catalog',
  tags: (name: string) => `/v2/${name}/tags/list`,
  manifest: (name: string, ref: string) => `/v2/${name}/manifests/${ref}`,
  blob: (name: string, digest: string) => `/v2/${name}/blobs/${digest}`,
  uploads: (name: string) => `/v2/${name}/blobs/uploads/`,
  upload: (name: string, id: string) => `/v2/${name}/blobs/uploads/${id}`,
  referrers: (name: string, digest: string) => `/v2/${name}/referrers/${digest}`,
};
