/**
 * The JSON progress stream as our CLI prints it: lines per layer redrawn in place on a terminal,
 * bytes, totals and the speed of each phase; plain lines elsewhere; errors end the stream.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { displayJsonMessages, StreamError, type JsonMessage } from './progress.js';

async function* stream(messages: JsonMessage[], clock: { t: number }, step: number): AsyncGenerator<JsonMessage> {
  for (const m of messages) {
    yield m;
    clock.t += step;
  }
}

const pull: JsonMessage[] = [
  { status: 'Pulling from team/app', id: '1' },
  { status: 'Pulling fs layer', id: 'aaa' },
  { status: 'Downloading', id: 'aaa', progressDetail: { current: 0, total: 4_000_000 } },
  { status: 'Downloading', id: 'aaa', progressDetail: { current: 1_000_000, total: 4_000_000 } },
  { status: 'Downloading', id: 'aaa', progressDetail: { current: 3_000_000, total: 4_000_000 } },
  { status: 'Verifying Checksum', id: 'aaa' },
  { status: 'Extracting', id: 'aaa', progressDetail: { current: 2_000_000, total: 8_000_000 } },
  { status: 'Extracting', id: 'aaa', progressDetail: { current: 8_000_000, total: 8_000_000 } },
  { status: 'Pull complete', id: 'aaa' },
  { status: 'Digest: sha256:abc' },
];

test('on a terminal each layer keeps one line with its bar, bytes and the speed of its phase', async () => {
  const clock = { t: 0 };
  let out = '';
  await displayJsonMessages(stream(pull, clock, 500), { write: (s: string) => (out += s) }, { terminal: true, width: 100, now: () => clock.t });
  // Downloading: 3 MB in the 1 s between the first and the last message of the phase.
  assert.match(out, /aaa: Downloading \[=+> *\] 3MB\/4MB 3MB\/s/);
  // A new phase starts its own clock: no speed on its first message.
  assert.match(out, /aaa: Extracting \[=+> *\] 2MB\/8MB\r/);
  assert.match(out, /aaa: Extracting \[=+>\] 8MB\/8MB 12MB\/s/);
  assert.match(out, /\x1b\[1A/, 'the layer line is redrawn in place');
  assert.match(out, /Digest: sha256:abc\n$/);
});

test('elsewhere bars are dropped and each status printed once, and an error ends the stream', async () => {
  const clock = { t: 0 };
  let out = '';
  await displayJsonMessages(stream(pull, clock, 500), { write: (s: string) => (out += s) }, { terminal: false, now: () => clock.t });
  assert.equal(out, ['1: Pulling from team/app', 'aaa: Pulling fs layer', 'aaa: Verifying Checksum', 'aaa: Pull complete', 'Digest: sha256:abc', ''].join('\n'));
  const failing = stream([{ status: 'Downloading', id: 'x' }, { error: 'boom', errorDetail: { message: 'manifest unknown', code: 3 } }], clock, 1);
  await assert.rejects(displayJsonMessages(failing, { write: () => true }, { terminal: false }), (err) => err instanceof StreamError && err.code === 3 && /manifest unknown/.test(err.message));
});
