/**
 * dockerode (npm), an SDK no one here wrote, against baleiad: images, create with the body it
 * sends twice (query and JSON), start, attach, logs, exec, wait, inspect, remove, events.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import Docker from 'dockerode';
import { bootstrapBusybox, startDaemon, type Daemon } from './harness.js';

async function collect(stream: NodeJS.ReadableStream): Promise<string> {
  let out = '';
  for await (const chunk of stream) out += chunk.toString();
  return out;
}

describe('dockerode against baleiad', () => {
  let daemon: Daemon;
  let docker: Docker;
  before(async () => {
    daemon = await startDaemon({ name: 'dockerode' });
    await bootstrapBusybox(daemon);
    docker = new Docker({ socketPath: daemon.socket });
  });
  after(async () => {
    await daemon?.cleanup();
  });

  test('ping, version, info and image listing', async () => {
    assert.equal((await docker.ping()).toString(), 'OK');
    assert.equal((await docker.version()).ApiVersion, '1.41');
    assert.ok((await docker.info()).NCPU >= 1);
    const images = await docker.listImages();
    assert.ok(images.some((i) => (i.RepoTags ?? []).includes('busybox:latest')));
    const img = await docker.getImage('busybox').inspect();
    assert.match(img.Id, /^sha256:/);
  });

  test('create, start, wait, logs (demultiplexed), inspect and remove', async () => {
    const container = await docker.createContainer({ Image: 'busybox', Cmd: ['sh', '-c', 'echo out; echo err >&2; exit 3'], Labels: { sdk: 'dockerode' } });
    await container.start();
    const result = await container.wait();
    assert.equal(result.StatusCode, 3);
    const raw = (await container.logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
    // stdcopy frames: [stream, 0, 0, 0, len32be] + payload.
    const streams: Record<number, string> = { 1: '', 2: '' };
    for (let i = 0; i + 8 <= raw.length; ) {
      const len = raw.readUInt32BE(i + 4);
      streams[raw[i]!] += raw.subarray(i + 8, i + 8 + len).toString();
      i += 8 + len;
    }
    assert.equal(streams[1], 'out\n');
    assert.equal(streams[2], 'err\n');
    const info = await container.inspect();
    assert.equal(info.State.ExitCode, 3);
    assert.equal(info.Config.Labels.sdk, 'dockerode');
    const listed = await docker.listContainers({ all: true, filters: { label: ['sdk=dockerode'] } });
    assert.equal(listed.length, 1);
    await container.remove();
    await assert.rejects(container.inspect(), (err: { statusCode?: number }) => err.statusCode === 404);
  });

  test('exec with output and exit code, and attach with stdin', async () => {
    const container = await docker.createContainer({ Image: 'busybox', Cmd: ['cat'], OpenStdin: true, StdinOnce: true, AttachStdin: true, AttachStdout: true });
    const stream = await container.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true });
    await container.start();
    const out = new PassThrough();
    docker.modem.demuxStream(stream, out, new PassThrough());
    stream.write('through attach\n');
    const exec = await container.exec({ Cmd: ['sh', '-c', 'echo from exec; exit 4'], AttachStdout: true, AttachStderr: true });
    const execStream = await exec.start({ hijack: true, stdin: false });
    const execOut = new PassThrough();
    docker.modem.demuxStream(execStream, execOut, new PassThrough());
    await new Promise((r) => execStream.on('end', r));
    execOut.end();
    assert.equal(await collect(execOut), 'from exec\n');
    assert.equal((await exec.inspect()).ExitCode, 4);
    stream.end();
    const waited = await container.wait();
    assert.equal(waited.StatusCode, 0);
    out.end();
    assert.equal(await collect(out), 'through attach\n');
    await container.remove({ force: true });
  });

  test('events stream what happens', async () => {
    const since = Math.floor(Date.now() / 1000) - 1;
    const container = await docker.createContainer({ Image: 'busybox', Cmd: ['true'], name: 'evt-dockerode' });
    await container.start();
    await container.wait();
    await container.remove();
    const until = Math.floor(Date.now() / 1000) + 1;
    const events = (await docker.getEvents({ since, until, filters: { container: ['evt-dockerode'] } })) as NodeJS.ReadableStream;
    const text = await collect(events);
    const actions = text.trim().split('\n').map((l) => JSON.parse(l).Action);
    for (const a of ['create', 'start', 'die', 'destroy']) assert.ok(actions.includes(a), `${a} in ${actions.join(',')}`);
  });
});
