/**
 * Docker's search API on the registry (what the engine's `GET /images/search` calls for
 * `docker search 127.0.0.1:5000/term`):
 *
 *   GET /v1/search?q=term&n=25&page=1
 *   → {"num_pages","num_results","page_size","page","query",
 *      "results":[{"name","description","star_count","is_official","is_automated"}]}
 *
 * A repository matches when its name contains the term (case-insensitive; an empty term matches
 * all). Only repositories the requester may pull are listed. The description is the
 * `org.opencontainers.image.description` label of the `latest` tag, read for the page shown only.
 */
import type http from 'node:http';
import { registryError } from './errors.js';
import type { Viewer } from './hub.js';
import { describeRepository } from './inspect.js';
import type { FrontendRequest } from './server.js';
import type { RegistryStore } from './store.js';

export interface SearchResult {
  name: string;
  description: string;
  star_count: number;
  is_official: boolean;
  is_automated: boolean;
}

export interface SearchPage {
  num_pages: number;
  num_results: number;
  page_size: number;
  page: number;
  query: string;
  results: SearchResult[];
}

function positive(text: string | null, fallback: number, max: number, what: string): number {
  if (text === null || text === '') return fallback;
  if (!/^\d+$/.test(text) || Number(text) < 1) throw registryError('PAGINATION_NUMBER_INVALID', { message: `invalid ${what} "${text}": expected a positive integer`, detail: { [what]: text } });
  return Math.min(Number(text), max);
}

/** Repositories whose name contains `query`, filtered by `visible`, one page of them. */
export async function searchRepositories(
  store: RegistryStore,
  query: string,
  options: { limit?: number; page?: number; visible?: (name: string) => boolean } = {},
): Promise<SearchPage> {
  const term = query.trim().toLowerCase();
  const limit = options.limit ?? 25;
  const page = options.page ?? 1;
  const all = (await store.listRepositories()).filter((name) => name.toLowerCase().includes(term) && (options.visible?.(name) ?? true));
  // Names that start with the term first, then by name.
  all.sort((a, b) => Number(!a.toLowerCase().startsWith(term)) - Number(!b.toLowerCase().startsWith(term)) || (a < b ? -1 : a > b ? 1 : 0));
  const slice = all.slice((page - 1) * limit, page * limit);
  const results = await Promise.all(
    slice.map(async (name) => ({ name, description: await describeRepository(store, name), star_count: 0, is_official: false, is_automated: false })),
  );
  return { num_pages: Math.max(1, Math.ceil(all.length / limit)), num_results: all.length, page_size: limit, page, query, results };
}

export async function handleSearch({ req, res, url, registry }: FrontendRequest, viewer: Viewer): Promise<void> {
  req.resume();
  if (req.method !== 'GET' && req.method !== 'HEAD') throw registryError('UNSUPPORTED', { message: `method ${req.method} is not allowed on /v1/search`, headers: { Allow: 'GET, HEAD' } });
  const query = url.searchParams.get('q') ?? '';
  const limit = positive(url.searchParams.get('n'), 25, 100, 'n');
  const page = positive(url.searchParams.get('page'), 1, 1_000_000, 'page');
  const result = await searchRepositories(registry.store, query, { limit, page, visible: (name) => viewer.canPull(name) });
  sendJson(res, result);
}

function sendJson(res: http.ServerResponse, value: unknown): void {
  const data = JSON.stringify(value);
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) });
  res.end(res.req.method === 'HEAD' ? undefined : data);
}
