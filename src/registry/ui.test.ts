/**
 * The web UI and the v1 search API over real HTTP: pages list repositories, tags and layers,
 * escape what images carry, answer 404 for what is missing or hidden, and follow the access
 * rules (a browser gets a Basic challenge when anonymous may see nothing).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { basic, labelledImage, pushTo, startHub } from './hub-testing.js';
import { escapeHtml, formatSize } from './ui.js';

const evil = '<script>alert("pwned")</script><img src=x onerror=alert(1)>';

test('the UI lists repositories, shows a tag with platform, size, layers, labels and the pull command, and escapes a malicious label', async (t) => {
  const hub = await startHub(t);
  const image = await labelledImage({ 'org.opencontainers.image.description': 'A demo & more', 'com.example.evil': evil, [`k${evil}`]: 'v' });
  await pushTo(hub, 'team/web', image, 'v1.0');
  await pushTo(hub, 'team/web', image, 'latest');
  await pushTo(hub, 'other/db', await labelledImage({}, 'db'), 'latest');

  const home = await hub.request('GET', '/');
  assert.equal(home.status, 200);
  assert.match(String(home.headers['content-type']), /^text\/html; charset=utf-8/);
  assert.match(String(home.headers['content-security-policy']), /default-src 'none'/);
  assert.match(home.text, /<!doctype html>\n<html lang="en">/);
  assert.match(home.text, /<form role="search" method="get" action="\/">/);
  assert.match(home.text, /<label for="q"[^>]*>Search repositories<\/label>/);
  assert.match(home.text, /<a href="\/r\/team\/web">team\/web<\/a>/);
  assert.match(home.text, /<a href="\/r\/other\/db">other\/db<\/a>/);
  assert.match(home.text, /A demo &amp; more/);

  const searched = await hub.request('GET', '/?q=WEB');
  assert.match(searched.text, /team\/web/);
  assert.doesNotMatch(searched.text, /other\/db/);
  assert.match(searched.text, /value="WEB"/);
  const xss = await hub.request('GET', `/?q=${encodeURIComponent('"><script>x</script>')}`);
  assert.doesNotMatch(xss.text, /<script>x/);
  assert.match(xss.text, /value="&quot;&gt;&lt;script&gt;x&lt;\/script&gt;"/);

  const repo = await hub.request('GET', '/r/team/web');
  assert.equal(repo.status, 200);
  assert.match(repo.text, /<h1>team\/web<\/h1>/);
  assert.match(repo.text, /<a href="\/r\/team\/web\/-\/tags\/latest">latest<\/a>/);
  assert.match(repo.text, /<a href="\/r\/team\/web\/-\/tags\/v1.0">v1.0<\/a>/);
  assert.match(repo.text, /<nav aria-label="Breadcrumb">/);

  const tag = await hub.request('GET', '/r/team/web/-/tags/v1.0', { headers: { Host: 'registry.example:5000' } });
  assert.equal(tag.status, 200);
  assert.match(tag.text, /<code class="pull-command">docker pull registry.example:5000\/team\/web:v1.0<\/code>/);
  assert.match(tag.text, /<span class="platform-name">linux\/arm64\/v8<\/span>/);
  assert.match(tag.text, new RegExp(`<code>${image.manifestDigest}</code>`));
  const layer = image.layers[0]!;
  assert.match(tag.text, new RegExp(`<td><code>sha256:[0-9a-f]{64}</code></td><td class="num">${formatSize(layer.length)}</td>`));
  assert.match(tag.text, /<time datetime="2024-05-06T07:08:09.123456789Z">2024-05-06 07:08:09Z<\/time>/);
  assert.match(tag.text, new RegExp(`${image.config.length + layer.length} bytes`));
  // The malicious label: present as text, never as markup.
  assert.ok(tag.text.includes(escapeHtml(evil)));
  assert.ok(tag.text.includes(`<code>k${escapeHtml(evil)}</code>`));
  assert.doesNotMatch(tag.text, /<script>|<img /);

  assert.equal((await hub.request('GET', '/r/team/nope')).status, 404);
  assert.equal((await hub.request('GET', '/r/team/web/-/tags/nope')).status, 404);
  assert.equal((await hub.request('GET', '/r/Bad..Name')).status, 404);
  assert.equal((await hub.request('POST', '/')).status, 405);
  assert.equal((await hub.request('GET', '/v2/_catalog')).json().repositories.length, 2);
});

test('search answers the docker search format, filtered by name and paginated', async (t) => {
  const hub = await startHub(t);
  await pushTo(hub, 'team/web', await labelledImage({ 'org.opencontainers.image.description': 'web server' }), 'latest');
  await pushTo(hub, 'webtools/curl', await labelledImage({}, 'curl'), '1');
  await pushTo(hub, 'other/db', await labelledImage({}, 'db'), 'latest');

  const found = await hub.request('GET', '/v1/search?q=web&n=25');
  assert.equal(found.status, 200);
  assert.deepEqual(found.json(), {
    num_pages: 1,
    num_results: 2,
    page_size: 25,
    page: 1,
    query: 'web',
    results: [
      { name: 'webtools/curl', description: '', star_count: 0, is_official: false, is_automated: false },
      { name: 'team/web', description: 'web server', star_count: 0, is_official: false, is_automated: false },
    ],
  });
  const paged = (await hub.request('GET', '/v1/search?q=&n=2&page=2')).json();
  assert.equal(paged.num_results, 3);
  assert.equal(paged.num_pages, 2);
  assert.deepEqual(paged.results.map((r: { name: string }) => r.name), ['webtools/curl']);
  assert.equal((await hub.request('GET', '/v1/search?q=x&n=abc')).code, 'PAGINATION_NUMBER_INVALID');
  const ping = await hub.request('GET', '/v1/_ping');
  assert.equal(ping.status, 200);
  assert.equal(ping.headers['x-docker-registry-standalone'], 'true');
});

test('with auth on, the UI challenges browsers, and UI and search show only what the user may pull', async (t) => {
  const hub = await startHub(t, {
    users: { alice: 'a-secret', bob: 'b-secret' },
    access: [
      { user: 'alice', repos: '*', actions: ['*'] },
      { user: 'bob', repos: 'team/*', actions: ['pull'] },
    ],
  });
  const alice = basic('alice', 'a-secret');
  await pushTo(hub, 'team/web', await labelledImage({}), 'latest', alice);
  await pushTo(hub, 'secret/db', await labelledImage({}, 'db'), 'latest', alice);

  const anonymous = await hub.request('GET', '/');
  assert.equal(anonymous.status, 401);
  assert.match(String(anonymous.headers['www-authenticate']), /^Basic realm="baleia-registry"/);
  assert.match(anonymous.text, /<h1>Sign in required<\/h1>/);
  assert.equal((await hub.request('GET', '/', { headers: { Authorization: basic('bob', 'wrong') } })).status, 401);

  const bobHome = await hub.request('GET', '/', { headers: { Authorization: basic('bob', 'b-secret') } });
  assert.match(bobHome.text, /team\/web/);
  assert.doesNotMatch(bobHome.text, /secret\/db/);
  assert.equal((await hub.request('GET', '/r/secret/db', { headers: { Authorization: basic('bob', 'b-secret') } })).status, 404);
  assert.equal((await hub.request('GET', '/r/secret/db', { headers: { Authorization: alice } })).status, 200);

  const bobSearch = (await hub.request('GET', '/v1/search?q=', { headers: { Authorization: basic('bob', 'b-secret') } })).json();
  assert.deepEqual(bobSearch.results.map((r: { name: string }) => r.name), ['team/web']);
  assert.equal((await hub.request('GET', '/v1/search?q=')).json().num_results, 0);
});
