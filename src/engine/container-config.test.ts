import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeCreate, mergeEnv, normalizeHostConfig, resolveUser, signalNumber, updateHostConfig, validateName } from './container-config.js';

const id = 'a'.repeat(64);

test('a user Cmd replaces the image Cmd and keeps the image Entrypoint', () => {
  const m = mergeCreate({ id, ncpu: 2, body: { Image: 'x', Cmd: ['b'] }, imageConfig: { Entrypoint: ['/ep'], Cmd: ['a'] } });
  assert.equal(m.path, '/ep');
  assert.deepEqual(m.args, ['b']);
});

test('a user Entrypoint drops the image Cmd; an empty one resets it', () => {
  const m = mergeCreate({ id, ncpu: 2, body: { Image: 'x', Entrypoint: ['echo'] }, imageConfig: { Entrypoint: ['/ep'], Cmd: ['a'] } });
  assert.deepEqual([m.path, ...m.args], ['echo']);
  const reset = mergeCreate({ id, ncpu: 2, body: { Image: 'x', Entrypoint: [''], Cmd: ['ls'] }, imageConfig: { Entrypoint: ['/ep'], Cmd: ['a'] } });
  assert.deepEqual([reset.path, ...reset.args], ['ls']);
});

test('no command at all is refused', () => {
  assert.throws(() => mergeCreate({ id, ncpu: 2, body: { Image: 'x' }, imageConfig: {} }), /No command specified/);
});

test('env merges by key with the user winning and PATH defaulted', () => {
  assert.deepEqual(mergeEnv(['A=1', 'B=2'], ['A=3']), ['B=2', 'A=3']);
  const m = mergeCreate({ id, ncpu: 2, body: { Image: 'x', Cmd: ['sh'], Env: ['X=1'] }, imageConfig: {} });
  assert.ok(m.config.Env.some((e) => e.startsWith('PATH=')));
  assert.equal(m.config.Hostname, id.slice(0, 12));
});

test('a relative working directory is refused', () => {
  assert.throws(() => mergeCreate({ id, ncpu: 2, body: { Image: 'x', Cmd: ['sh'], WorkingDir: 'rel' }, imageConfig: {} }), /absolute path/);
});

test('host config defaults and validation follow dockerd', () => {
  const hc = normalizeHostConfig({ Memory: 64 * 1024 * 1024 }, 2);
  assert.equal(hc.MemorySwap, 128 * 1024 * 1024);
  assert.equal(hc.ShmSize, 64 * 1024 * 1024);
  assert.equal(hc.LogConfig.Type, 'json-file');
  assert.equal(hc.NetworkMode, 'default');
  assert.deepEqual(hc.RestartPolicy, { Name: 'no', MaximumRetryCount: 0 });
  assert.throws(() => normalizeHostConfig({ Memory: 1024 }, 2), /Minimum memory limit allowed is 6MB/);
  assert.throws(() => normalizeHostConfig({ NanoCpus: 3e9 }, 2), /Range of CPUs is from 0.01 to 2.00/);
  assert.throws(() => normalizeHostConfig({ NanoCpus: 1e9, CpuPeriod: 100000 }, 2), /Conflicting options/);
  assert.throws(() => normalizeHostConfig({ CpusetCpus: '5' }, 2), /not available/);
  assert.throws(() => normalizeHostConfig({ AutoRemove: true, RestartPolicy: { Name: 'always' } }, 2), /AutoRemove/);
});

test('users resolve by name, uid and uid:gid against passwd and group', () => {
  const passwd = 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\nwhale:x:1000:1000::/home/whale:/bin/sh\n';
  const group = 'root:x:0:\nnogroup:x:65534:\nwhale:x:1000:\nsea:x:2000:whale\n';
  assert.deepEqual(resolveUser('', passwd, group), { uid: 0, gid: 0, additionalGids: [] });
  assert.deepEqual(resolveUser('whale', passwd, group), { uid: 1000, gid: 1000, additionalGids: [2000] });
  assert.deepEqual(resolveUser('1234:4321', passwd, group), { uid: 1234, gid: 4321, additionalGids: [] });
  assert.deepEqual(resolveUser('nobody:sea', passwd, group), { uid: 65534, gid: 2000, additionalGids: [] });
  assert.throws(() => resolveUser('ghost', passwd, group), /unable to find user ghost/);
});

test('names and signals', () => {
  assert.equal(validateName('web-1'), '/web-1');
  assert.throws(() => validateName('bad name'), /Invalid container name/);
  assert.equal(signalNumber('TERM'), 15);
  assert.equal(signalNumber('SIGKILL'), 9);
  assert.equal(signalNumber('10'), 10);
  assert.equal(signalNumber('NOPE'), undefined);
});

test('update doubles a swap limit that a new memory limit outgrows and refuses a restart policy with AutoRemove', () => {
  const current = normalizeHostConfig({ Memory: 64 * 1024 * 1024, MemorySwap: 128 * 1024 * 1024 }, 2);
  const next = updateHostConfig(current, { Memory: 256 * 1024 * 1024 }, 2);
  assert.equal(next.Memory, 256 * 1024 * 1024);
  assert.equal(next.MemorySwap, 512 * 1024 * 1024);
  const autoRemove = normalizeHostConfig({ AutoRemove: true }, 2);
  assert.throws(() => updateHostConfig(autoRemove, { RestartPolicy: { Name: 'always' } }, 2), /^BaleiaError: Restart policy cannot be updated because AutoRemove is enabled for the container$/);
});
