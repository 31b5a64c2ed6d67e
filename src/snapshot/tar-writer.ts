/**
 * A small streaming tar writer (ustar headers + PAX extended headers), the writing twin of
 * `tar-reader.ts`. tar-stream is not used for writing because it can only carry PAX values as
 * strings (a binary `security.capability` xattr would be corrupted) and refuses a body for a
 * hand-made `pax-header` entry.
 *
 * Tar facts relied on: 512-byte blocks; numeric fields are octal, NUL-terminated; the checksum
 * is the byte sum of the header with its own field read as 8 spaces, written as 6 octal digits,
 * NUL, space; a PAX record is `<len> <key>=<value>\n` where len counts the whole record; values
 * that do not fit ustar (long or non-ASCII names, ids over 0o7777777, sizes over 8 GiB, xattrs
 * as `SCHILY.xattr.<name>`) go in one PAX header before the entry (Go's archive/tar keeps only
 * the last of consecutive PAX headers, so there is never more than one); the archive ends with
 * two zero blocks.
 */
export type TarWriteType = 'file' | 'link' | 'symlink' | 'char' | 'block' | 'directory' | 'fifo';

export interface TarWriteEntry {
  /** The entry name; a directory gets its trailing `/` added here. */
  name: string;
  type: TarWriteType;
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of the body (regular files only). */
  size?: number;
  /** Seconds since the epoch (truncated to whole seconds as Docker does). */
  mtime: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Map<string, Buffer>;
  /** The file's bytes: exactly `size` are written (cut, or padded with zeros if it shrank). */
  body?: AsyncIterable<Buffer>;
}

const typeflags: Record<TarWriteType, string> = {
  file: '0',
  link: '1',
  symlink: '2',
  char: '3',
  block: '4',
  directory: '5',
  fifo: '6',
};

const block = 512;
const zeros = Buffer.alloc(block * 2);

const isAscii = (s: string) => /^[\x01-\x7f]*$/.test(s);

/** `s` as a NUL-padded octal field of `width` bytes, or undefined when it does not fit. */
function octal(n: number, width: number): string | undefined {
  const digits = Math.max(0, Math.trunc(n)).toString(8);
  return digits.length <= width - 1 ? digits.padStart(width - 1, '0') : undefined;
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

/** Splits a name into ustar (prefix, name) fields, or undefined when it needs PAX. */
function splitName(name: string): [string, string] | undefined {
  if (!isAscii(name)) return undefined;
  if (name.length <= 100) return ['', name];
  for (let i = name.indexOf('/'); i !== -1; i = name.indexOf('/', i + 1)) {
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (prefix.length <= 155 && rest.length <= 100 && rest.length > 0) return [prefix, rest];
  }
  return undefined;
}

function header(fields: {
  name: string;
  prefix: string;
  mode: number;
  uid: string;
  gid: string;
  size: string;
  mtime: string;
  typeflag: string;
  linkname: string;
  devmajor: number;
  devminor: number;
}): Buffer {
  const h = Buffer.alloc(block);
  h.write(fields.name, 0, 100, 'utf8');
  h.write(octal(fields.mode & 0o7777, 8)!, 100, 'ascii');
  h.write(fields.uid, 108, 'ascii');
  h.write(fields.gid, 116, 'ascii');
  h.write(fields.size, 124, 'ascii');
  h.write(fields.mtime, 136, 'ascii');
  h.write(fields.typeflag, 156, 'ascii');
  h.write(fields.linkname, 157, 100, 'utf8');
  h.write('ustar\u000000', 257, 'ascii');
  h.write(octal(fields.devmajor, 8) ?? '0000000', 329, 'ascii');
  h.write(octal(fields.devminor, 8) ?? '0000000', 337, 'ascii');
  h.write(fields.prefix, 345, 155, 'utf8');
  h.write('        ', 148, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\u0000 ', 148, 'ascii');
  return h;
}

/** The header block(s) of one entry: a PAX header first when ustar cannot hold it. */
export function encodeHeader(e: TarWriteEntry): Buffer {
  const name = e.type === 'directory' && !e.name.endsWith('/') ? e.name + '/' : e.name;
  const size = e.type === 'file' ? (e.size ?? 0) : 0;
  const mtime = Math.trunc(e.mtime);
  const pax: Buffer[] = [];
  let split = splitName(name);
  if (!split) {
    pax.push(paxRecord('path', Buffer.from(name)));
    split = ['', Buffer.from(name).subarray(-99).toString('latin1').replace(/[^\x01-\x7f]/g, '_')];
  }
  let linkname = e.linkname ?? '';
  if (!isAscii(linkname) || linkname.length > 100) {
    pax.push(paxRecord('linkpath', Buffer.from(linkname)));
    linkname = '';
  }
  const num = (key: string, n: number, width: number) => {
    const o = octal(n, width);
    if (o !== undefined) return o;
    pax.push(paxRecord(key, Buffer.from(String(Math.trunc(n)))));
    return '0'.repeat(width - 1);
  };
  const uid = num('uid', e.uid, 8);
  const gid = num('gid', e.gid, 8);
  const sizeField = num('size', size, 12);
  const mtimeField = num('mtime', mtime, 12);
  for (const [key, value] of e.xattrs ?? []) pax.push(paxRecord(`SCHILY.xattr.${key}`, value));

  const main = header({
    name: split[1],
    prefix: split[0],
    mode: e.mode,
    uid,
    gid,
    size: sizeField,
    mtime: mtimeField,
    typeflag: typeflags[e.type],
    linkname,
    devmajor: e.devmajor ?? 0,
    devminor: e.devminor ?? 0,
  });
  if (pax.length === 0) return main;
  const body = Buffer.concat(pax);
  const paxHeader = header({
    name: 'PaxHeaders/' + split[1].slice(0, 88),
    prefix: '',
    mode: 0o644,
    uid: '0000000',
    gid: '0000000',
    size: octal(body.length, 12)!,
    mtime: octal(mtime, 12) ?? '00000000000',
    typeflag: 'x',
    linkname: '',
    devmajor: 0,
    devminor: 0,
  });
  return Buffer.concat([paxHeader, body, Buffer.alloc(padding(body.length)), main]);
}

const padding = (n: number) => (block - (n % block)) % block;

/**
 * The tar of `entries` as an async stream of chunks; pull-driven, so it never reads ahead of
 * its consumer. Ends with the two zero blocks.
 */
export async function* writeTar(entries: AsyncIterable<TarWriteEntry>): AsyncGenerator<Buffer> {
  for await (const e of entries) {
    yield encodeHeader(e);
    if (e.type !== 'file') continue;
    const size = e.size ?? 0;
    let written = 0;
    if (e.body) {
      for await (const chunk of e.body) {
        if (written >= size) break;
        const take = chunk.length > size - written ? chunk.subarray(0, size - written) : chunk;
        written += take.length;
        yield take;
      }
    }
    while (written < size) {
      const n = Math.min(size - written, 65536);
      yield Buffer.alloc(n);
      written += n;
    }
    const pad = padding(size);
    if (pad) yield zeros.subarray(0, pad);
  }
  yield zeros;
}
