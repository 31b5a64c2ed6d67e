/**
 * The web UI in a real browser: headless Chromium (Debian's) driven by playwright-core clicks
 * from the repository list to a repository, then to a tag, and sees the layers and the pull
 * command. Chromium may reach 127.0.0.1 only: every other request is aborted (and counted), DNS
 * resolves nothing, and background networking is off.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import type { BrowserContext } from 'playwright-core';
import { labelledImage, pushTo, startHub } from './hub-testing.js';
import type { TestImage } from './testing.js';

const chromiumPath = '/usr/bin/chromium';

test('a browser clicks from the repository list to a tag and sees its layers and pull command', { skip: existsSync(chromiumPath) ? false : `${chromiumPath} is missing (apt-get install chromium)`, timeout: 60_000 }, async (t) => {
  const { chromium } = await import('playwright-core');
  const hub = await startHub(t);
  const image = await labelledImage({ 'org.opencontainers.image.title': 'Browser <demo>' }, 'browser');
  await pushTo(hub, 'demo/browser', image, 'v1');
  await pushTo(hub, 'demo/other', await labelledImage({}, 'other'), 'latest');

  const profile = path.join(hub.dir, 'chromium-profile');
  await fs.mkdir(profile);
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    chromiumSandbox: false,
    timeout: 30_000,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    ],
  });
  try {
    await clickThrough(context, hub.url, hub.address, image);
  } finally {
    await context.close();
  }
});

async function clickThrough(context: BrowserContext, base: string, address: string, image: TestImage): Promise<void> {
  const blocked: string[] = [];
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === '127.0.0.1') return route.continue();
    blocked.push(url.href);
    return route.abort('blockedbyclient');
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(15_000);

  await page.goto(`${base}/`);
  assert.equal(await page.title(), 'Repositories · baleia registry');
  await page.getByRole('searchbox', { name: 'Search repositories' }).fill('browser');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.waitForURL(/\?q=browser$/);
  assert.equal(await page.getByRole('link', { name: 'demo/other' }).count(), 0);

  await page.getByRole('link', { name: 'demo/browser' }).click();
  await page.waitForURL(`${base}/r/demo/browser`);
  assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'demo/browser');

  await page.getByRole('link', { name: 'v1' }).click();
  await page.waitForURL(`${base}/r/demo/browser/-/tags/v1`);
  assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'demo/browser:v1');
  assert.equal(await page.locator('code.pull-command').textContent(), `docker pull ${address}/demo/browser:v1`);
  assert.equal(await page.locator('.platform-name').textContent(), 'linux/arm64/v8');
  const layers = page.getByRole('table').filter({ has: page.getByRole('columnheader', { name: 'Digest' }) });
  const rows = await layers.locator('tbody tr').allTextContents();
  assert.equal(rows.length, 1);
  assert.ok(rows[0]!.includes(image.manifest.toString().match(/"layers":\[\{[^}]*"digest":"(sha256:[0-9a-f]{64})"/)![1]!));
  assert.ok(await page.getByRole('cell', { name: 'Browser <demo>' }).isVisible());

  await page.getByRole('navigation', { name: 'Breadcrumb' }).getByRole('link', { name: 'Repositories' }).click();
  await page.waitForURL(`${base}/`);
  assert.equal(await page.getByRole('link', { name: 'demo/other' }).count(), 1);
  assert.deepEqual(blocked, []);
}
