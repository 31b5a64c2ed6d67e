/**
 * A streaming tar reader (ustar, GNU long names, PAX) that keeps PAX values as raw bytes:
 * `SCHILY.xattr.*` values are binary (security.capability), which a string decoder corrupts.
 *
 * Tar facts relied on: 512-byte blocks; header checksum is the byte sum with the checksum
 * field read as spaces; numbers are octal, or base-256 when the first byte has bit 7 set;
 * an archive ends with two zero blocks (a clean EOF at a header boundary is accepted too,
 * as Go's archive/tar does).
 */
import { invalidArgument } from '../lib/index.js';

export type TarEntryType =
  | 'file'
  | 'link'
  | 'symlink'
  | 'char'
  | 'block'
  | 'directory'
  | 'fifo'
  | 'other';

export interface TarHeader {
  name: string;
  type: TarEntryType;
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch, fractional when PAX gave more precision. */
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  xattrs: Map<string, Buffer>;
  pax: Map<string, Buffer>;
}

export interface TarEntry {
  header: TarHeader;
  /** The entry's bytes; read it fully or leave it: the reader skips what is left. */
  body: AsyncIterable<Buffer>;
}

const empty = Buffer.alloc(0);

class ByteSource {
  #it: AsyncIterator<Buffer | Uint8Array | string>;
  /** What is left of the current input chunk. */
  #buf: Buffer = empty;
  #done = false;

  constructor(src: AsyncIterable<Buffer | Uint8Array | string>) {
    this.#it = src[Symbol.asyncIterator]();
  }

  async #next(): Promise<Buffer | undefined> {
    if (this.#done) return undefined;
    const r = await this.#it.next();
    if (r.done) {
      this.#done = true;
      return undefined;
    }
    return typeof r.value === 'string' ? Buffer.from(r.value) : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
  }

  /**
   * Exactly n bytes, or fewer only at the end of input. Only bytes that straddle input chunks
   * are copied (headers at a chunk boundary), never the rest of a chunk.
   */
  async read(n: number): Promise<Buffer> {
    if (this.#buf.length >= n) {
      const out = this.#buf.subarray(0, n);
      this.#buf = this.#buf.subarray(n);
      return out;
    }
    const parts = [this.#buf];
    let have = this.#buf.length;
    this.#buf = empty;
    while (have < n) {
      const chunk = await this.#next();
      if (!chunk) break;
      const take = Math.min(n - have, chunk.length);
      parts.push(chunk.subarray(0, take));
      have += take;
      this.#buf = chunk.subarray(take);
    }
    return Buffer.concat(parts, have);
  }

  /** Up to n bytes in chunks as they arrive; throws if input ends first. */
  async *chunks(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.#buf.length === 0) {
        const chunk = await this.#next();
        if (!chunk) throw truncated();
        this.#buf = chunk;
      }
      const take = Math.min(left, this.#buf.length);
      const out = this.#buf.subarray(0, take);
      this.#buf = this.#buf.subarray(take);
      left -= take;
      yield out;
    }
  }

  async drain(): Promise<void> {
    this.#buf = empty;
    while (await this.#next());
  }
}

const truncated = () => invalidArgument('Cannot read tar archive: unexpected end of data (truncated archive)');

function parseNumber(field: Buffer, what: string): number {
  if (field.length > 0 && (field[0]! & 0x80) !== 0) {
    // base-256, big-endian two's complement; positive values only make sense here
    let v = field[0]! & 0x7f;
    for (let i = 1; i < field.length; i++) v = v * 256 + field[i]!;
    return v;
  }
  const s = field.toString('latin1').replace(/\0.*$/s, '').trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw invalidArgument(`Cannot read tar archive: invalid ${what} field "${s}"`);
  return parseInt(s, 8);
}

function cString(field: Buffer): string {
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? field.length : end).toString('utf8');
}

function checksumOk(block: Buffer): boolean {
  let stored: number;
  try {
    stored = parseNumber(block.subarray(148, 156), 'checksum');
  } catch {
    return false;
  }
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < 512; i++) {
    const b = i >= 148 && i < 156 ? 32 : block[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

function parsePax(data: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let pos = 0;
  while (pos < data.length) {
    const sp = data.indexOf(0x20, pos);
    if (sp === -1) break;
    const len = parseInt(data.subarray(pos, sp).toString('latin1'), 10);
    if (!Number.isFinite(len) || len <= 0 || pos + len > data.length) {
      throw invalidArgument('Cannot read tar archive: invalid PAX header record');
    }
    const record = data.subarray(sp + 1, pos + len - 1); // without trailing \n
    const eq = record.indexOf(0x3d);
    if (eq === -1) throw invalidArgument('Cannot read tar archive: invalid PAX header record');
    out.set(record.subarray(0, eq).toString('utf8'), Buffer.from(record.subarray(eq + 1)));
    pos += len;
  }
  return out;
}

const typeOf = (flag: string): TarEntryType => {
  switch (flag) {
    case '0':
    case '\0':
    case '':
    case '7':
      return 'file';
    case '1':
      return 'link';
    case '2':
      return 'symlink';
    case '3':
      return 'char';
    case '4':
      return 'block';
    case '5':
      return 'directory';
    case '6':
      return 'fifo';
    default:
      return 'other';
  }
};

/**
 * Reads entries from a tar byte stream. After the end-of-archive marker the rest of the
 * input is drained so that a caller hashing the input sees every byte.
 */
export async function* readTar(source: AsyncIterable<Buffer | Uint8Array | string>): AsyncGenerator<TarEntry> {
  const src = new ByteSource(source);
  let globalPax = new Map<string, Buffer>();
  let pax: Map<string, Buffer> | undefined;
  let longName: string | undefined;
  let longLink: string | undefined;
  for (;;) {
    const block = await src.read(512);
    if (block.length === 0) return; // clean EOF at a header boundary
    if (block.length < 512) throw truncated();
    if (block.every((b) => b === 0)) {
      await src.drain();
      return;
    }
    if (!checksumOk(block)) throw invalidArgument('Cannot read tar archive: invalid header checksum (not a tar archive, or corrupt)');
    const typeflag = String.fromCharCode(block[156]!);
    const size = parseNumber(block.subarray(124, 136), 'size');
    const padded = Math.ceil(size / 512) * 512;

    if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
      if (size > 64 * 1024 * 1024) throw invalidArgument('Cannot read tar archive: extended header too large');
      const data = await src.read(padded);
      if (data.length < padded) throw truncated();
      const body = data.subarray(0, size);
      if (typeflag === 'x') pax = new Map([...(pax ?? []), ...parsePax(body)]);
      else if (typeflag === 'g') globalPax = new Map([...globalPax, ...parsePax(body)]);
      else if (typeflag === 'L') longName = cString(body);
      else longLink = cString(body);
      continue;
    }

    const magic = block.subarray(257, 263).toString('latin1');
    let name = cString(block.subarray(0, 100));
    if (magic === 'ustar\0') {
      const prefix = cString(block.subarray(345, 500));
      if (prefix) name = `${prefix}/${name}`;
    }
    const records = new Map([...globalPax, ...(pax ?? [])]);
    const header: TarHeader = {
      name: longName ?? name,
      type: typeOf(typeflag),
      typeflag,
      mode: parseNumber(block.subarray(100, 108), 'mode') & 0o7777,
      uid: parseNumber(block.subarray(108, 116), 'uid'),
      gid: parseNumber(block.subarray(116, 124), 'gid'),
      size,
      mtime: parseNumber(block.subarray(136, 148), 'mtime'),
      linkname: longLink ?? cString(block.subarray(157, 257)),
      devmajor: parseNumber(block.subarray(329, 337), 'devmajor'),
      devminor: parseNumber(block.subarray(337, 345), 'devminor'),
      xattrs: new Map(),
      pax: records,
    };
    pax = undefined;
    longName = undefined;
    longLink = undefined;
    for (const [key, value] of records) {
      const text = () => value.toString('utf8');
      if (key === 'path') header.name = text();
      else if (key === 'linkpath') header.linkname = text();
      else if (key === 'size') header.size = Number(text());
      else if (key === 'uid') header.uid = Number(text());
      else if (key === 'gid') header.gid = Number(text());
      else if (key === 'mtime') header.mtime = Number(text());
      else if (key.startsWith('SCHILY.xattr.')) header.xattrs.set(key.slice('SCHILY.xattr.'.length), value);
      else if (key.startsWith('LIBARCHIVE.xattr.')) {
        header.xattrs.set(decodeURIComponent(key.slice('LIBARCHIVE.xattr.'.length)), Buffer.from(text(), 'base64'));
      } else if (key.startsWith('GNU.sparse.')) {
        throw invalidArgument(`Cannot read tar archive: sparse file "${header.name}" is not supported`);
      }
    }
    if (typeflag === 'S') throw invalidArgument(`Cannot read tar archive: sparse file "${header.name}" is not supported`);
    if (!Number.isSafeInteger(header.size) || header.size < 0) {
      throw invalidArgument(`Cannot read tar archive: invalid size for "${header.name}"`);
    }
    // Links, directories and devices carry no data even if a size is set (except PAX-sized files).
    const dataSize = header.type === 'file' || header.type === 'other' ? header.size : 0;
    const dataPadded = Math.ceil(dataSize / 512) * 512;
    let consumed = 0;
    let finished = false;
    const body = (async function* () {
      if (finished) return;
      for await (const chunk of src.chunks(dataSize - consumed)) {
        consumed += chunk.length;
        yield chunk;
      }
      finished = true;
    })();
    yield { header, body };
    // Skip whatever the consumer left of the data and the padding.
    if (!finished) {
      for await (const chunk of src.chunks(dataSize - consumed)) consumed += chunk.length;
      finished = true;
    }
    const pad = dataPadded - dataSize;
    if (pad > 0) {
      const p = await src.read(pad);
      if (p.length < pad) throw truncated();
    }
  }
}
