/**
 * Test support for the hub (not exported by index.ts): a registry with users, access rules, TLS
 * or not, on 127.0.0.1:0 over a temp root removed after the test. Users get bcrypt cost 4 so
 * tests stay fast; the format is the same as at cost 10.
 */
import type { TestContext } from 'node:test';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { addUser } from './htpasswd.js';
import { serveHub, type HubAuthOptions, type HubOptions, type RunningHub } from './hub.js';
import { request, tempDir, type Reply, type RequestOptions } from './testing.js';

export interface TestHub extends RunningHub {
  root: string;
  dir: string;
  url: string;
  request(method: string, pathname: string, options?: RequestOptions): Promise<Reply>;
}

export const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

export async function startHub(
  t: TestContext,
  options: Omit<HubOptions, 'root' | 'auth'> & {
    users?: Record<string, string>;
    access?: unknown;
    auth?: Partial<HubAuthOptions>;
  } = {},
): Promise<TestHub> {
  const dir = await tempDir('hub');
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const root = path.join(dir, 'root');
  let auth: HubAuthOptions | undefined;
  if (options.users) {
    const htpasswd = path.join(dir, 'htpasswd');
    await fs.writeFile(htpasswd, '');
    for (const [name, password] of Object.entries(options.users)) await addUser(htpasswd, name, password, { cost: 4 });
    let accessFile: string | undefined;
    if (options.access !== undefined) {
      accessFile = path.join(dir, typeof options.access === 'string' ? 'access.yaml' : 'access.json');
      await fs.writeFile(accessFile, typeof options.access === 'string' ? options.access : JSON.stringify(options.access));
    }
    auth = { mode: 'token', htpasswd, accessFile, ...options.auth };
  }
  const hub = await serveHub({ ...options, root, auth, host: '127.0.0.1', port: 0 });
  t.after(() => hub.close());
  return { ...hub, root, dir, url: `${hub.scheme}://${hub.address}`, request: (method, pathname, opts) => request(hub.port, method, pathname, opts) };
}
