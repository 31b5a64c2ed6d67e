/**
 * A self-signed certificate for a local registry (`--tls-self-signed`): an ECDSA P-256 key and
 * an X.509 certificate made by `openssl req -x509` (Debian's openssl; no npm dependency), kept in
 * the registry root and reused while it is valid for another day and names the same hosts.
 *
 *   <root>/tls/ca/registry.crt  the certificate: give it to clients to trust (docker:
 *                               /etc/docker/certs.d/<host:port>/ca.crt; skopeo --cert-dir <root>/tls/ca)
 *   <root>/tls/registry.key     its key (0600), outside ca/: containers/image reads a `.key` in a
 *                               cert dir as a client key and fails without a matching `.cert`
 *
 * Subject alternative names: localhost, 127.0.0.1, ::1, the machine's hostname and the listen
 * host when it is a specific name or address.
 */
import { X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { BaleiaError, errnoCode, run } from '../lib/index.js';

export interface SelfSignedCert {
  certFile: string;
  keyFile: string;
  cert: Buffer;
  key: Buffer;
  /** SHA-256 fingerprint, as browsers show it. */
  fingerprint: string;
  created: boolean;
}

function subjectAltNames(hosts: string[]): string[] {
  const names = new Set(['DNS:localhost', 'IP:127.0.0.1', 'IP:::1']);
  for (const h of hosts) {
    const host = h.replace(/^\[|\]$/g, '');
    if (host === '' || host === '0.0.0.0' || host === '::') continue;
    if (isIP(host)) names.add(`IP:${host}`);
    else if (/^[A-Za-z0-9.-]+$/.test(host)) names.add(`DNS:${host}`);
  }
  return [...names];
}

/** `IP Address:127.0.0.1, DNS:localhost` (node's form) → the same entries in openssl's config form. */
function certNames(cert: X509Certificate): Set<string> {
  return new Set((cert.subjectAltName ?? '').split(/,\s*/).map((n) => n.replace(/^IP Address:/, 'IP:')).map((n) => (n === 'IP:0:0:0:0:0:0:0:1' ? 'IP:::1' : n)));
}

/** The root's self-signed certificate, made (or remade) when missing, expiring or naming other hosts. */
export async function ensureSelfSignedCert(root: string, options: { hosts?: string[]; days?: number; signal?: AbortSignal } = {}): Promise<SelfSignedCert> {
  const dir = path.join(root, 'tls');
  const certFile = path.join(dir, 'ca', 'registry.crt');
  const keyFile = path.join(dir, 'registry.key');
  const wanted = subjectAltNames([os.hostname(), ...(options.hosts ?? [])]);
  try {
    const [cert, key] = await Promise.all([fs.readFile(certFile), fs.readFile(keyFile)]);
    const x509 = new X509Certificate(cert);
    const names = certNames(x509);
    if (new Date(x509.validTo).getTime() > Date.now() + 86_400_000 && wanted.every((n) => names.has(n))) {
      return { certFile, keyFile, cert, key, fingerprint: x509.fingerprint256, created: false };
    }
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw new BaleiaError('Internal', `Cannot read the registry certificate "${certFile}"`, { cause: err });
  }
  await fs.mkdir(path.join(dir, 'ca'), { recursive: true, mode: 0o700 });
  const tmpKey = `${keyFile}.tmp-${process.pid}`;
  const tmpCert = `${certFile}.tmp-${process.pid}`;
  try {
    await run(
      'openssl',
      [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-sha256',
        '-days', String(options.days ?? 365),
        '-subj', '/O=baleia/CN=baleia registry',
        '-addext', `subjectAltName=${wanted.join(',')}`,
        '-addext', 'basicConstraints=critical,CA:TRUE',
        '-addext', 'keyUsage=critical,digitalSignature,keyCertSign',
        '-addext', 'extendedKeyUsage=serverAuth',
        '-keyout', tmpKey, '-out', tmpCert,
      ],
      { signal: options.signal },
    );
    await fs.chmod(tmpKey, 0o600);
    await fs.rename(tmpKey, keyFile);
    await fs.rename(tmpCert, certFile);
  } catch (err) {
    await Promise.all([fs.rm(tmpKey, { force: true }), fs.rm(tmpCert, { force: true })]);
    throw new BaleiaError('Internal', 'Cannot make a self-signed certificate with openssl (install openssl, or pass --tls-cert and --tls-key)', { cause: err });
  }
  const [cert, key] = await Promise.all([fs.readFile(certFile), fs.readFile(keyFile)]);
  return { certFile, keyFile, cert, key, fingerprint: new X509Certificate(cert).fingerprint256, created: true };
}
