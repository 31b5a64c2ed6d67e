import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseFlags, UsageError, type FlagSpec } from './flags.js';

const specs: FlagSpec[] = [
  { long: 'interactive', short: 'i', type: 'bool', description: '' },
  { long: 'tty', short: 't', type: 'bool', description: '' },
  { long: 'detach', short: 'd', type: 'bool', description: '' },
  { long: 'env', short: 'e', type: 'list', description: '' },
  { long: 'name', type: 'string', description: '' },
  { long: 'publish', short: 'p', type: 'list', description: '' },
  { long: 'last', short: 'n', type: 'int', description: '', default: -1 },
  { long: 'sig-proxy', type: 'bool', description: '', default: true },
];

test('combined short bools set each flag', () => {
  const { flags, args } = parseFlags(specs, ['-it', 'busybox']);
  assert.equal(flags.bool('interactive'), true);
  assert.equal(flags.bool('tty'), true);
  assert.equal(flags.bool('detach'), false);
  assert.deepEqual(args, ['busybox']);
});

test('values attach in every docker form', () => {
  const { flags } = parseFlags(specs, ['-e', 'A=1', '-eB=2', '-e=C=3', '--env', 'D=4', '--env=E=5', '--name=x', '-p8080:80']);
  assert.deepEqual(flags.list('env'), ['A=1', 'B=2', 'C=3', 'D=4', 'E=5']);
  assert.equal(flags.string('name'), 'x');
  assert.deepEqual(flags.list('publish'), ['8080:80']);
});

test('a bool flag takes =false', () => {
  const { flags } = parseFlags(specs, ['--sig-proxy=false', '-d=true']);
  assert.equal(flags.bool('sig-proxy'), false);
  assert.equal(flags.bool('detach'), true);
  assert.equal(flags.changed('sig-proxy'), true);
});

test('defaults apply when a flag is absent', () => {
  const { flags } = parseFlags(specs, []);
  assert.equal(flags.bool('sig-proxy'), true);
  assert.equal(flags.int('last'), -1);
  assert.equal(flags.changed('last'), false);
});

test('parsing stops at the first positional when not interspersed', () => {
  const { flags, args } = parseFlags(specs, ['-d', 'busybox', 'ls', '-l', '--name', 'y'], { interspersed: false });
  assert.equal(flags.bool('detach'), true);
  assert.equal(flags.string('name'), undefined);
  assert.deepEqual(args, ['busybox', 'ls', '-l', '--name', 'y']);
});

test('interspersed flags after positionals are parsed', () => {
  const { flags, args } = parseFlags(specs, ['a', '-n', '3', 'b']);
  assert.equal(flags.int('last'), 3);
  assert.deepEqual(args, ['a', 'b']);
});

test('a double dash ends the flags', () => {
  const { args } = parseFlags(specs, ['--', '-it', 'x']);
  assert.deepEqual(args, ['-it', 'x']);
});

test('a negative number is a value, not a flag', () => {
  const { flags } = parseFlags(specs, ['--last', '-1']);
  assert.equal(flags.int('last'), -1);
});

test('unknown flags are usage errors with docker text', () => {
  assert.throws(() => parseFlags(specs, ['--bogus']), (err: unknown) => err instanceof UsageError && err.message === 'unknown flag: --bogus');
  assert.throws(() => parseFlags(specs, ['-z']), /unknown shorthand flag: 'z' in -z/);
  assert.throws(() => parseFlags(specs, ['--name']), /flag needs an argument: --name/);
  assert.throws(() => parseFlags(specs, ['-n', 'x']), /invalid argument "x" for "-n, --last" flag/);
});

test('--help and -h ask for help', () => {
  assert.equal(parseFlags(specs, ['--help']).help, true);
  assert.equal(parseFlags(specs, ['-h']).help, true);
});
