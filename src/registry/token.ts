/**
 * Bearer tokens of the registry's own token server: compact JWS (JWT) signed with HMAC-SHA256
 * under a 32-byte key kept in the registry root (`<root>/auth/token.key`, 0600, made on first
 * use), so tokens survive restarts and only this server can mint or read them.
 *
 *   header  {"typ":"JWT","alg":"HS256","kid":"<first 12 hex of sha256(key)>"}
 *   claims  {"iss","sub","aud","exp","nbf","iat","jti","access":[{"type","name","actions"}]}
 *
 * Access tokens (`kind` absent) carry the Docker token spec's `access` claim; refresh tokens
 * (`"kind":"refresh"`, the OAuth2 grant docker and podman use after `login`) carry only who and
 * for which service, and are exchanged at `POST /token` for access tokens.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { BaleiaError, errnoCode, writeFileAtomic } from '../lib/index.js';
import type { AccessEntry } from './access.js';

export interface TokenClaims {
  iss: string;
  /** The user name; empty for anonymous. */
  sub: string;
  aud: string;
  exp: number;
  nbf: number;
  iat: number;
  jti: string;
  access?: AccessEntry[];
  kind?: 'refresh';
}

const b64url = (data: Buffer | string) => Buffer.from(data).toString('base64url');

export class TokenSigner {
  readonly #key: Buffer;
  readonly #kid: string;
  readonly issuer: string;

  constructor(key: Buffer, options: { issuer?: string } = {}) {
    if (key.length < 32) throw new BaleiaError('InvalidArgument', 'Cannot use the token key: it must be at least 32 bytes');
    this.#key = key;
    this.#kid = createHash('sha256').update(key).digest('hex').slice(0, 12);
    this.issuer = options.issuer ?? 'baleia-registry';
  }

  /** The signer of `<root>/auth/token.key`, creating the key when it does not exist. */
  static async open(root: string, options: { issuer?: string } = {}): Promise<TokenSigner> {
    const file = path.join(root, 'auth', 'token.key');
    try {
      return new TokenSigner(await fs.readFile(file), options);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw new BaleiaError('Internal', `Cannot read the token key "${file}"`, { cause: err });
    }
    await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const key = randomBytes(32);
    await writeFileAtomic(file, key, { mode: 0o600 });
    return new TokenSigner(key, options);
  }

  sign(claims: Omit<TokenClaims, 'iss' | 'iat' | 'nbf' | 'exp' | 'jti'> & { ttlSeconds: number }): { token: string; claims: TokenClaims } {
    const now = Math.floor(Date.now() / 1000);
    const { ttlSeconds, ...rest } = claims;
    // nbf a little in the past: clients with a slightly slow clock still accept it.
    const full: TokenClaims = { iss: this.issuer, ...rest, iat: now, nbf: now - 10, exp: now + ttlSeconds, jti: randomBytes(12).toString('base64url') };
    const head = b64url(JSON.stringify({ typ: 'JWT', alg: 'HS256', kid: this.#kid }));
    const body = b64url(JSON.stringify(full));
    const sig = createHmac('sha256', this.#key).update(`${head}.${body}`).digest('base64url');
    return { token: `${head}.${body}.${sig}`, claims: full };
  }

  /** The claims of a token this signer made for `audience`, or undefined (forged, expired, other service). */
  verify(token: string, audience: string): TokenClaims | undefined {
    const parts = token.split('.');
    if (parts.length !== 3) return undefined;
    const [head, body, sig] = parts as [string, string, string];
    const want = createHmac('sha256', this.#key).update(`${head}.${body}`).digest();
    const got = Buffer.from(sig, 'base64url');
    if (got.length !== want.length || !timingSafeEqual(got, want)) return undefined;
    let header: { alg?: unknown };
    let claims: TokenClaims;
    try {
      header = JSON.parse(Buffer.from(head, 'base64url').toString('utf8')) as { alg?: unknown };
      claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as TokenClaims;
    } catch {
      return undefined;
    }
    if (header.alg !== 'HS256' || claims.iss !== this.issuer || claims.aud !== audience) return undefined;
    const now = Math.floor(Date.now() / 1000);
    if (typeof claims.exp !== 'number' || claims.exp <= now || typeof claims.nbf !== 'number' || claims.nbf > now) return undefined;
    return claims;
  }
}
