/**
 * The registry's users: an Apache-style htpasswd file of bcrypt hashes (`name:$2y$10$…`, one a
 * line), the format docker/distribution's htpasswd auth reads and `htpasswd -B` writes. Other
 * hash schemes (MD5 `$apr1$`, SHA1, crypt) are refused on load rather than silently never
 * matching.
 *
 * Lifecycle: `Htpasswd.open(file)` → `verify(name, password)` per request (re-reads the file when
 * it changed, so `baleia registry user add` takes effect without a restart) ;
 * `addUser(file, name, password)` rewrites the file atomically.
 *
 * bcrypt is deliberately slow (~50–100 ms at cost 10 in pure JS), and Basic auth sends the
 * password on every request, so a successful check is remembered for a short while, keyed by a
 * SHA-256 of the name, password and stored hash (a changed hash or password misses the cache).
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { BaleiaError, errnoCode, writeFileAtomic } from '../lib/index.js';

/** Cost of new hashes: htpasswd's and distribution's default. */
export const defaultBcryptCost = 10;
const cacheMs = 5 * 60_000;
/** A hash to compare against for unknown users, so a wrong name costs as much as a wrong password. */
let decoyHash: Promise<string> | undefined;

/** What htpasswd accepts in a user name: no `:` (the separator), no whitespace or control chars. */
export function checkUserName(name: string): string {
  if (!/^[^:\s\x00-\x1f\x7f]{1,255}$/.test(name)) {
    throw new BaleiaError('InvalidArgument', `Cannot use user name "${name}": it must be 1 to 255 characters without ":" or whitespace`);
  }
  return name;
}

export function parseHtpasswd(text: string, file = 'htpasswd'): Map<string, string> {
  const users = new Map<string, string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    const name = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    if (colon <= 0 || !/^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/.test(hash)) {
      throw new BaleiaError('InvalidArgument', `Cannot read "${file}" line ${i + 1}: expected "name:<bcrypt hash>" (create users with "baleia registry user add")`);
    }
    users.set(name, hash);
  });
  return users;
}

export async function hashPassword(password: string, options: { cost?: number } = {}): Promise<string> {
  const hash = await bcrypt.hash(password, options.cost ?? defaultBcryptCost);
  // htpasswd -B writes $2y$; bcrypt treats 2a/2b/2y alike for passwords under 72 bytes.
  return hash.replace(/^\$2[ab]\$/, '$2y$');
}

/**
 * Adds `name` or replaces its password; creates the file (0600) when it does not exist.
 * Returns whether the user already existed.
 */
export async function addUser(file: string, name: string, password: string, options: { cost?: number } = {}): Promise<{ replaced: boolean }> {
  checkUserName(name);
  if (password === '') throw new BaleiaError('InvalidArgument', `Cannot add user "${name}": the password is empty`);
  let text = '';
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw new BaleiaError('Internal', `Cannot read "${file}"`, { cause: err });
  }
  const users = parseHtpasswd(text, file);
  const replaced = users.has(name);
  users.set(name, await hashPassword(password, options));
  await fs.mkdir(path.dirname(path.resolve(file)), { recursive: true });
  const out = [...users].map(([n, h]) => `${n}:${h}\n`).join('');
  await writeFileAtomic(file, out, { mode: 0o600 });
  return { replaced };
}

export class Htpasswd {
  readonly file: string;
  #users = new Map<string, string>();
  #stamp = '';
  #checked = 0;
  readonly #verified = new Map<string, number>();

  private constructor(file: string) {
    this.file = file;
  }

  /** Reads `file`; it must exist (an empty file means nobody can log in). */
  static async open(file: string): Promise<Htpasswd> {
    const h = new Htpasswd(file);
    await h.#reload(true);
    return h;
  }

  get users(): string[] {
    return [...this.#users.keys()];
  }

  has(name: string): boolean {
    return this.#users.has(name);
  }

  /** True when `password` is `name`'s. */
  async verify(name: string, password: string): Promise<boolean> {
    await this.#reload(false);
    const hash = this.#users.get(name);
    const key = createHash('sha256').update(`${name}\0${password}\0${hash ?? ''}`).digest('hex');
    const until = this.#verified.get(key);
    if (hash !== undefined && until !== undefined && until > Date.now()) return true;
    const ok = await bcrypt.compare(password, hash ?? (await (decoyHash ??= hashPassword(String(Math.random())))));
    if (!ok || hash === undefined) return false;
    if (this.#verified.size > 1000) this.#verified.clear();
    this.#verified.set(key, Date.now() + cacheMs);
    return true;
  }

  /** Re-reads the file when its mtime or size changed (checked at most once a second). */
  async #reload(force: boolean): Promise<void> {
    if (!force && Date.now() - this.#checked < 1000) return;
    this.#checked = Date.now();
    let stat;
    try {
      stat = await fs.stat(this.file);
    } catch (err) {
      if (force) throw new BaleiaError(errnoCode(err) === 'ENOENT' ? 'NotFound' : 'Internal', `Cannot read htpasswd file "${this.file}" (create it with "baleia registry user add --file ${this.file} NAME")`, { cause: err });
      return;
    }
    const stamp = `${stat.mtimeMs}:${stat.size}:${stat.ino}`;
    if (stamp === this.#stamp) return;
    try {
      this.#users = parseHtpasswd(await fs.readFile(this.file, 'utf8'), this.file);
    } catch (err) {
      // A file caught half-edited by hand: keep serving the users read last time.
      if (force) throw err;
      return;
    }
    this.#stamp = stamp;
  }
}
