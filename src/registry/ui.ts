/**
 * The registry's web UI: server-rendered HTML, no script, one small inline stylesheet.
 *
 *   /                          repositories (only those the viewer may pull), with a search box
 *   /?q=term                   repositories whose name contains the term
 *   /r/<name>                  the repository's tags
 *   /r/<name>/-/tags/<tag>     the tag: pull command, digest, and per platform size, creation
 *                              time, labels and layers
 *
 * `-` cannot be a repository name component (components start with [a-z0-9]), so the tag path
 * is never mistaken for a deeper repository. Every value from the store is escaped; pages carry a
 * Content-Security-Policy that allows no script at all, so a hostile label stays text.
 */
import type http from 'node:http';
import { describeError } from '../lib/index.js';
import { registryErrorOf } from './errors.js';
import type { Viewer } from './hub.js';
import { describeRepository, inspectTag, type PlatformImage, type TagInfo } from './inspect.js';
import { isName, isTag } from './names.js';
import type { FrontendRequest } from './server.js';

export interface UiOptions {
  /** Who is looking; throws a 401 with a Basic challenge when anonymous may see nothing. */
  viewer: () => Promise<Viewer>;
  secure: boolean;
}

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const esc = escapeHtml;
const repoPath = (name: string) => `/r/${name.split('/').map(encodeURIComponent).join('/')}`;
const tagPath = (name: string, tag: string) => `${repoPath(name)}/-/tags/${encodeURIComponent(tag)}`;

/** go-units HumanSize: decimal units, three significant digits (`1.57 MB`). */
export function formatSize(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : Number(v.toPrecision(3))} ${units[i]}`;
}

const style = `
:root{color-scheme:light dark;--fg:#1b1f24;--muted:#57606a;--bg:#fff;--line:#d0d7de;--accent:#0550ae;--code:#f6f8fa}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9da7b3;--bg:#0d1117;--line:#30363d;--accent:#6cb6ff;--code:#161b22}}
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg)}
header,main,footer{max-width:72rem;margin:0 auto;padding:0 1rem}
header{display:flex;gap:1rem;align-items:center;justify-content:space-between;flex-wrap:wrap;border-bottom:1px solid var(--line);padding-block:.75rem}
header a.home{font-weight:700;font-size:1.15rem;color:var(--fg);text-decoration:none}
a{color:var(--accent)}a:focus-visible,button:focus-visible,input:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
form[role=search]{display:flex;gap:.5rem}
input[type=search]{font:inherit;padding:.35rem .6rem;border:1px solid var(--line);border-radius:6px;min-width:16rem;background:var(--bg);color:var(--fg)}
button{font:inherit;padding:.35rem .9rem;border:1px solid var(--line);border-radius:6px;background:var(--code);color:var(--fg);cursor:pointer}
h1{font-size:1.6rem;margin:1.25rem 0 .5rem;word-break:break-all}h2{font-size:1.2rem;margin:1.5rem 0 .5rem}
nav[aria-label=Breadcrumb] ol{list-style:none;display:flex;flex-wrap:wrap;gap:.35rem;padding:0;margin:1rem 0 0}
nav[aria-label=Breadcrumb] li+li::before{content:"/";margin-right:.35rem;color:var(--muted)}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600;color:var(--muted)}td.num,th.num{text-align:right;white-space:nowrap}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em}
code{word-break:break-all}
pre{background:var(--code);border:1px solid var(--line);border-radius:6px;padding:.75rem 1rem;overflow-x:auto}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:.5rem 0}dt{color:var(--muted)}dd{margin:0}
.muted{color:var(--muted)}
section.platform{border:1px solid var(--line);border-radius:8px;padding:0 1rem;margin:1rem 0}
footer{color:var(--muted);font-size:.85rem;padding-block:2rem}
`;

function page(title: string, body: string, query = ''): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} · baleia registry</title>
<style>${style}</style>
</head>
<body>
<header>
<a class="home" href="/">baleia registry</a>
<form role="search" method="get" action="/">
<label for="q" class="muted">Search repositories</label>
<input id="q" name="q" type="search" value="${esc(query)}" placeholder="name contains…">
<button type="submit">Search</button>
</form>
</header>
<main id="main">
${body}
</main>
<footer>OCI Distribution registry · <a href="/v2/">/v2/</a></footer>
</body>
</html>
`;
}

function breadcrumb(items: Array<{ label: string; href?: string }>): string {
  const li = items.map((i, n) =>
    i.href && n < items.length - 1 ? `<li><a href="${esc(i.href)}">${esc(i.label)}</a></li>` : `<li aria-current="page">${esc(i.label)}</li>`,
  );
  return `<nav aria-label="Breadcrumb"><ol>${li.join('')}</ol></nav>`;
}

function sendHtml(res: http.ServerResponse, status: number, html: string, headers: Record<string, string> = {}): void {
  const data = Buffer.from(html);
  res.writeHead(status, {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': data.length,
    'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(res.req.method === 'HEAD' ? undefined : data);
}

/** A Host header fit to print in a pull command. */
function pullHost(req: http.IncomingMessage): string {
  const host = req.headers.host;
  return host && /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?$/.test(host) ? host : 'localhost';
}

async function repositoryList({ req, registry, url }: FrontendRequest, viewer: Viewer): Promise<string> {
  const query = (url.searchParams.get('q') ?? '').trim();
  const term = query.toLowerCase();
  const names = (await registry.store.listRepositories()).filter((n) => viewer.canPull(n) && n.toLowerCase().includes(term));
  const shown = names.slice(0, 500);
  const rows = await Promise.all(
    shown.map(async (name) => {
      const tags = await registry.store.listTags(name).catch(() => [] as string[]);
      const description = await describeRepository(registry.store, name);
      return `<tr><td><a href="${esc(repoPath(name))}">${esc(name)}</a></td><td class="num">${tags.length}</td><td>${esc(description)}</td></tr>`;
    }),
  );
  const heading = query ? `Repositories matching “${esc(query)}”` : 'Repositories';
  const summary = `<p class="muted">${names.length} ${names.length === 1 ? 'repository' : 'repositories'}${names.length > shown.length ? `, first ${shown.length} shown` : ''}</p>`;
  const table =
    rows.length === 0
      ? `<p>${query ? 'No repository matches.' : 'No repositories yet. Push one with <code>docker push ' + esc(pullHost(req)) + '/name:tag</code>.'}</p>`
      : `<table><caption class="muted" style="text-align:left">Repositories</caption><thead><tr><th scope="col">Name</th><th scope="col" class="num">Tags</th><th scope="col">Description</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
  return page(query ? `Search: ${query}` : 'Repositories', `<h1>${heading}</h1>${summary}${table}`, query);
}

async function repositoryPage({ registry }: FrontendRequest, name: string): Promise<string | undefined> {
  let tags: string[];
  try {
    tags = await registry.store.listTags(name);
  } catch {
    return undefined;
  }
  const rows = tags.map((tag) => `<li><a href="${esc(tagPath(name, tag))}">${esc(tag)}</a></li>`);
  const body =
    breadcrumb([{ label: 'Repositories', href: '/' }, { label: name }]) +
    `<h1>${esc(name)}</h1>` +
    `<h2 id="tags">Tags <span class="muted">(${tags.length})</span></h2>` +
    (rows.length ? `<ul aria-labelledby="tags">${rows.join('')}</ul>` : '<p>This repository has no tags.</p>');
  return page(name, body);
}

function platformSection(image: PlatformImage, index: number): string {
  const id = `platform-${index}`;
  const labels = Object.entries(image.labels).sort(([a], [b]) => (a < b ? -1 : 1));
  const labelTable = labels.length
    ? `<table aria-labelledby="${id}-labels"><thead><tr><th scope="col">Label</th><th scope="col">Value</th></tr></thead><tbody>${labels
        .map(([k, v]) => `<tr><td><code>${esc(k)}</code></td><td>${esc(v)}</td></tr>`)
        .join('')}</tbody></table>`
    : '<p class="muted">No labels.</p>';
  const layerRows = image.layers
    .map((l, i) => `<tr><td class="num">${i + 1}</td><td><code>${esc(l.digest)}</code></td><td class="num">${esc(formatSize(l.size))}</td><td><code>${esc(l.mediaType)}</code></td></tr>`)
    .join('');
  const layerTable = image.layers.length
    ? `<table class="layers" aria-labelledby="${id}-layers"><thead><tr><th scope="col" class="num">#</th><th scope="col">Digest</th><th scope="col" class="num">Size</th><th scope="col">Media type</th></tr></thead><tbody>${layerRows}</tbody></table>`
    : '<p class="muted">No layers in this repository for this platform.</p>';
  const created = image.created ? `<time datetime="${esc(image.created)}">${esc(image.created.replace('T', ' ').replace(/\.\d+/, ''))}</time>` : '<span class="muted">unknown</span>';
  return `<section class="platform" aria-labelledby="${id}">
<h2 id="${id}">Platform <span class="platform-name">${esc(image.platform)}</span></h2>
<dl>
<dt>Size</dt><dd>${esc(formatSize(image.size))} <span class="muted">(${image.size} bytes, compressed)</span></dd>
<dt>Created</dt><dd>${created}</dd>
<dt>Manifest</dt><dd><code>${esc(image.manifestDigest)}</code></dd>
${image.configDigest ? `<dt>Config</dt><dd><code>${esc(image.configDigest)}</code></dd>` : ''}
${image.artifactType ? `<dt>Artifact type</dt><dd><code>${esc(image.artifactType)}</code></dd>` : ''}
</dl>
<h3 id="${id}-labels">Labels</h3>
${labelTable}
<h3 id="${id}-layers">Layers <span class="muted">(${image.layers.length})</span></h3>
${layerTable}
</section>`;
}

async function tagPage({ req, registry }: FrontendRequest, name: string, tag: string): Promise<string | undefined> {
  let info: TagInfo;
  try {
    info = await inspectTag(registry.store, name, tag);
  } catch {
    return undefined;
  }
  const pull = `docker pull ${pullHost(req)}/${name}:${tag}`;
  const body =
    breadcrumb([{ label: 'Repositories', href: '/' }, { label: name, href: repoPath(name) }, { label: tag }]) +
    `<h1>${esc(name)}:${esc(tag)}</h1>` +
    `<h2 id="pull">Pull</h2><pre aria-labelledby="pull"><code class="pull-command">${esc(pull)}</code></pre>` +
    `<dl><dt>Digest</dt><dd><code>${esc(info.digest)}</code></dd><dt>Media type</dt><dd><code>${esc(info.mediaType)}</code></dd>` +
    `<dt>Platforms</dt><dd>${info.images.map((i) => esc(i.platform)).join(', ') || '<span class="muted">none</span>'}</dd></dl>` +
    info.images.map((image, i) => platformSection(image, i)).join('\n');
  return page(`${name}:${tag}`, body);
}

function notFound(what: string): string {
  return page('Not found', `<h1>Not found</h1><p>${esc(what)}</p><p><a href="/">All repositories</a></p>`);
}

/** Answers the UI's paths; resolves false for paths that are not its own. */
export async function handleUi(request: FrontendRequest, options: UiOptions): Promise<boolean> {
  const { req, res, url } = request;
  const pathname = url.pathname;
  if (pathname === '/favicon.ico') {
    req.resume();
    res.writeHead(204, { 'Cache-Control': 'max-age=86400' });
    res.end();
    return true;
  }
  req.resume();
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    sendHtml(res, 405, page('Method not allowed', '<h1>Method not allowed</h1>'), { Allow: 'GET, HEAD' });
    return true;
  }
  try {
    const viewer = await options.viewer();
    if (pathname === '/') {
      sendHtml(res, 200, await repositoryList(request, viewer));
      return true;
    }
    let rest: string;
    try {
      rest = decodeURIComponent(pathname.slice('/r/'.length)).replace(/\/+$/, '');
    } catch {
      sendHtml(res, 400, notFound('The address is not valid.'));
      return true;
    }
    const sep = rest.indexOf('/-/tags/');
    const name = sep < 0 ? rest : rest.slice(0, sep);
    const tag = sep < 0 ? undefined : rest.slice(sep + '/-/tags/'.length);
    // A repository the viewer may not pull is answered like one that does not exist.
    if (!isName(name) || !viewer.canPull(name) || (tag !== undefined && !isTag(tag))) {
      sendHtml(res, 404, notFound(`No repository "${name}".`));
      return true;
    }
    const html = tag === undefined ? await repositoryPage(request, name) : await tagPage(request, name, tag);
    if (html === undefined) sendHtml(res, 404, notFound(tag === undefined ? `No repository "${name}".` : `No tag "${tag}" in "${name}".`));
    else sendHtml(res, 200, html);
    return true;
  } catch (err) {
    const info = registryErrorOf(err);
    if (info.status >= 500) throw err;
    const title = info.status === 401 ? 'Sign in required' : 'Request refused';
    const detail = err instanceof Error ? err.message : describeError(err);
    sendHtml(res, info.status, page(title, `<h1>${esc(title)}</h1><p>${esc(detail)}</p>`), info.headers ?? {});
    return true;
  }
}
