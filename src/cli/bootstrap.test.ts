import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import tar from 'tar-stream';
import { busyboxEntries, packEntries } from './bootstrap.js';

test('the busybox root holds the binary, a symlink per applet, passwd, group and the usual dirs', () => {
  const entries = busyboxEntries(['bin/sh', 'usr/bin/wget', 'sbin/ip', 'bin/busybox', 'bin/sh'], { path: '/bin/busybox', size: 10 });
  const byName = new Map(entries.map((e) => [e.name, e]));
  for (const d of ['bin/', 'dev/', 'etc/', 'home/', 'proc/', 'root/', 'sys/', 'tmp/', 'usr/', 'usr/bin/', 'var/', 'sbin/']) {
    assert.equal(byName.get(d)?.type, 'directory', d);
  }
  assert.equal(byName.get('tmp/')?.mode, 0o1777);
  assert.equal(byName.get('bin/busybox')?.type, 'file');
  assert.deepEqual(byName.get('usr/bin/wget'), { name: 'usr/bin/wget', type: 'symlink', mode: 0o777, linkname: '/bin/busybox' });
  assert.equal(entries.filter((e) => e.name === 'bin/sh').length, 1);
  assert.match(byName.get('etc/passwd')!.content!, /^root:x:0:0:root:\/root:\/bin\/sh$/m);
  assert.match(byName.get('etc/passwd')!.content!, /^nobody:x:65534:65534:/m);
  assert.match(byName.get('etc/group')!.content!, /^nogroup:x:65534:$/m);
  // Parents come before children.
  const index = (n: string) => entries.findIndex((e) => e.name === n);
  assert.ok(index('usr/bin/') < index('usr/bin/wget'));
});

test('packed entries read back as the same tar', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'baleia-bootstrap-'));
  try {
    const bin = path.join(dir, 'busybox');
    writeFileSync(bin, 'ELF-ish');
    const entries = busyboxEntries(['bin/sh'], { path: bin, size: 7 });
    const stream = packEntries(entries, { mtime: new Date(0) });
    const extract = tar.extract();
    const seen: Array<[string, string | undefined, string]> = [];
    const done = new Promise<void>((resolve, reject) => {
      extract.on('entry', (header, body, next) => {
        const chunks: Buffer[] = [];
        body.on('data', (c: unknown) => chunks.push(c as Buffer));
        body.on('end', () => {
          seen.push([header.name, header.type ?? undefined, Buffer.concat(chunks).toString()]);
          next();
        });
      });
      extract.on('finish', resolve);
      extract.on('error', reject);
    });
    stream.pipe(extract);
    await done;
    assert.deepEqual(seen.find(([n]) => n === 'bin/busybox'), ['bin/busybox', 'file', 'ELF-ish']);
    assert.equal(seen.find(([n]) => n === 'bin/sh')?.[1], 'symlink');
    assert.equal(seen.length, entries.length);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
