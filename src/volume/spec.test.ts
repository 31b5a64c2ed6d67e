import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isKind } from '../lib/index.js';
import { checkDuplicateDestinations, parseMountSpec, parseVolumeSpec, type ParsedMount } from './index.js';

function expectError(fn: () => unknown, message: string) {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isKind(err, 'InvalidArgument'), `expected InvalidArgument, got ${String(err)}`);
    assert.equal((err as Error).message, message);
    return true;
  });
}

describe('parseVolumeSpec', () => {
  const ok: Array<[string, ParsedMount]> = [
    ['/data', { type: 'volume', destination: '/data', readOnly: false, mode: 'z' }],
    ['vol:/data', { type: 'volume', source: 'vol', destination: '/data', readOnly: false, mode: 'z' }],
    ['vol:/data/:ro', { type: 'volume', source: 'vol', destination: '/data', readOnly: true, mode: 'ro' }],
    ['vol:/data:rw,nocopy', { type: 'volume', source: 'vol', destination: '/data', readOnly: false, mode: 'rw,nocopy', nocopy: true }],
    ['vol:/data:Z', { type: 'volume', source: 'vol', destination: '/data', readOnly: false, mode: 'Z' }],
    ['/host:/x', { type: 'bind', source: '/host', destination: '/x', readOnly: false, mode: '', propagation: 'rprivate' }],
    ['/host/../h//:/x/y/..:ro,z', { type: 'bind', source: '/h', destination: '/x', readOnly: true, mode: 'ro,z', propagation: 'rprivate' }],
    ['/host:/x:rshared', { type: 'bind', source: '/host', destination: '/x', readOnly: false, mode: 'rshared', propagation: 'rshared' }],
    ['/host:/x:ro,slave,cached', { type: 'bind', source: '/host', destination: '/x', readOnly: true, mode: 'ro,slave,cached', propagation: 'slave' }],
  ];
  for (const [spec, want] of ok) {
    it(`parses ${spec}`, () => assert.deepEqual(parseVolumeSpec(spec), want));
  }

  const bad: Array<[string, string]> = [
    ['', "invalid volume specification: ''"],
    [':/x', "invalid volume specification: ':/x'"],
    ['/x:ro', "invalid volume specification: '/x:ro'"],
    ['/x:', "invalid volume specification: '/x:'"],
    ['a:/b:ro:extra', "invalid volume specification: 'a:/b:ro:extra'"],
    ['vol:/x:rw,ro', 'invalid mode: rw,ro'],
    ['vol:/x:bogus', 'invalid mode: bogus'],
    ['vol:/x:z,Z', 'invalid mode: z,Z'],
    ['data', `invalid volume specification: 'data': invalid mount config for type "volume": invalid mount path: 'data' mount path must be absolute`],
    ['vol:rel', `invalid volume specification: 'vol:rel': invalid mount config for type "volume": invalid mount path: 'rel' mount path must be absolute`],
    ['/h:rel', `invalid volume specification: '/h:rel': invalid mount config for type "bind": invalid mount path: 'rel' mount path must be absolute`],
    ['vol:/', `invalid volume specification: 'vol:/': invalid mount config for type "volume": invalid specification: destination can't be '/'`],
    ['vol:/x:shared', `invalid volume specification: 'vol:/x:shared': invalid mount config for type "volume": field BindOptions must not be specified`],
    ['/h:/x:nocopy', `invalid volume specification: '/h:/x:nocopy': invalid mount config for type "bind": field VolumeOptions must not be specified`],
  ];
  for (const [spec, message] of bad) {
    it(`rejects ${JSON.stringify(spec)} with Docker's text`, () => expectError(() => parseVolumeSpec(spec), message));
  }
});

describe('parseMountSpec', () => {
  it('normalises a named volume with options', () => {
    assert.deepEqual(
      parseMountSpec({
        Type: 'volume',
        Source: 'db',
        Target: '/var/lib/db/',
        ReadOnly: true,
        VolumeOptions: { NoCopy: true, Labels: { a: 'b' }, DriverConfig: { Name: 'local', Options: { type: 'tmpfs', device: 'tmpfs' } } },
      }),
      {
        type: 'volume',
        source: 'db',
        destination: '/var/lib/db',
        readOnly: true,
        mode: '',
        nocopy: true,
        volumeOptions: { labels: { a: 'b' }, driver: 'local', driverOptions: { type: 'tmpfs', device: 'tmpfs' } },
      },
    );
  });

  it('normalises an anonymous volume, a bind and a tmpfs', () => {
    assert.deepEqual(parseMountSpec({ Type: 'volume', Target: '/v' }), { type: 'volume', destination: '/v', readOnly: false, mode: '' });
    assert.deepEqual(parseMountSpec({ Type: 'bind', Source: '/tmp', Target: '/t', BindOptions: { Propagation: 'rslave' } }), {
      type: 'bind', source: '/tmp', destination: '/t', readOnly: false, mode: '', propagation: 'rslave',
    });
    assert.deepEqual(
      parseMountSpec({ Type: 'bind', Source: '/nonexistent-baleia-test', Target: '/t', BindOptions: { CreateMountpoint: true } }),
      { type: 'bind', source: '/nonexistent-baleia-test', destination: '/t', readOnly: false, mode: '', propagation: 'rprivate', createMountpoint: true },
    );
    assert.deepEqual(parseMountSpec({ Type: 'tmpfs', Target: '/run', ReadOnly: true, TmpfsOptions: { SizeBytes: 64 * 1024 * 1024, Mode: 0o1777 } }), {
      type: 'tmpfs', destination: '/run', readOnly: true, mode: '', tmpfsOptions: 'ro,mode=1777,size=64m',
    });
    assert.equal(parseMountSpec({ Type: 'tmpfs', Target: '/r', TmpfsOptions: { SizeBytes: 1000 } }).tmpfsOptions, 'size=1000');
    assert.equal(parseMountSpec({ Type: 'tmpfs', Target: '/r', TmpfsOptions: { SizeBytes: 3 * 2 ** 30 } }).tmpfsOptions, 'size=3g');
  });

  const bad: Array<[object, string]> = [
    [{ Type: 'volume' }, 'invalid mount config for type "volume": field Target must not be empty'],
    [{ Type: 'volume', Target: 'rel' }, `invalid mount config for type "volume": invalid mount path: 'rel' mount path must be absolute`],
    [{ Type: 'bind', Target: '/' , Source: '/x' }, `invalid mount config for type "bind": invalid specification: destination can't be '/'`],
    [{ Type: 'bind', Target: '/t' }, 'invalid mount config for type "bind": field Source must not be empty'],
    [{ Type: 'bind', Source: 'rel', Target: '/t' }, `invalid mount config for type "bind": invalid mount path: 'rel' mount path must be absolute`],
    [{ Type: 'bind', Source: '/nonexistent-baleia-test', Target: '/t' }, 'invalid mount config for type "bind": bind source path does not exist: /nonexistent-baleia-test'],
    [{ Type: 'bind', Source: '/tmp', Target: '/t', BindOptions: { Propagation: 'weird' } }, 'invalid mount config for type "bind": invalid propagation mode: weird'],
    [{ Type: 'bind', Source: '/tmp', Target: '/t', VolumeOptions: {} }, 'invalid mount config for type "bind": field VolumeOptions must not be specified'],
    [{ Type: 'bind', Source: '/tmp', Target: '/t', TmpfsOptions: {} }, 'invalid mount config for type "bind": field TmpfsOptions must not be specified'],
    [{ Type: 'volume', Target: '/t', BindOptions: {} }, 'invalid mount config for type "volume": field BindOptions must not be specified'],
    [{ Type: 'volume', Target: '/t', ReadOnly: true }, 'invalid mount config for type "volume": must not set ReadOnly mode when using anonymous volumes'],
    [{ Type: 'tmpfs', Target: '/t', Source: 'x' }, 'invalid mount config for type "tmpfs": field Source must not be specified'],
    [{ Type: 'tmpfs', Target: '/t', VolumeOptions: {} }, 'invalid mount config for type "tmpfs": field VolumeOptions must not be specified'],
    [{ Type: 'npipe', Target: '/t' }, 'invalid mount config for type "npipe": mount type unknown'],
    [{ Target: '/t' }, 'invalid mount config for type "": mount type unknown'],
  ];
  for (const [m, message] of bad) {
    it(`rejects ${JSON.stringify(m)} with Docker's text`, () => expectError(() => parseMountSpec(m), message));
  }
});

describe('checkDuplicateDestinations', () => {
  it('accepts distinct destinations and names the duplicate one', () => {
    checkDuplicateDestinations([{ destination: '/a' }, { destination: '/b' }]);
    expectError(
      () => checkDuplicateDestinations([parseVolumeSpec('v:/data'), parseMountSpec({ Type: 'tmpfs', Target: '/data/' })]),
      'Duplicate mount point: /data',
    );
  });
});
