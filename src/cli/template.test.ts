import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderTemplate } from './template.js';

const container = {
  Id: 'abc',
  State: { Running: true, Pid: 1234567, Status: 'running' },
  Config: { Labels: { b: '2', a: '1' }, Env: ['A=1', 'B=2'], Cmd: null },
  NetworkSettings: { Networks: { bridge: { IPAddress: '10.0.0.2' } } },
  Names: ['x', 'y'],
};

test('fields, nested fields and missing keys print like Go', () => {
  assert.equal(renderTemplate('{{.Id}} {{.State.Pid}} {{.State.Running}}', container), 'abc 1234567 true');
  assert.equal(renderTemplate('{{.Nope}}', container), '<no value>');
  assert.equal(renderTemplate('{{.Config.Cmd}}', container), '<nil>');
  assert.equal(renderTemplate('{{.Config.Env}}', container), '[A=1 B=2]');
  assert.equal(renderTemplate('{{.Config.Labels}}', container), 'map[a:1 b:2]');
});

test('json, join, index, upper and pipes', () => {
  assert.equal(renderTemplate('{{json .Config.Labels}}', container), '{"b":"2","a":"1"}');
  assert.equal(renderTemplate('{{join .Names ","}}', container), 'x,y');
  assert.equal(renderTemplate('{{index .Config.Labels "a"}}', container), '1');
  assert.equal(renderTemplate('{{.State.Status | upper}}', container), 'RUNNING');
  assert.equal(renderTemplate('{{json .}}', { A: 1 }), '{"A":1}');
  assert.equal(renderTemplate('{{printf "%s-%d" .Id 3}}', container), 'abc-3');
});

test('if, else and with', () => {
  assert.equal(renderTemplate('{{if .State.Running}}up{{else}}down{{end}}', container), 'up');
  assert.equal(renderTemplate('{{if .Config.Cmd}}cmd{{else if .Id}}id{{else}}none{{end}}', container), 'id');
  assert.equal(renderTemplate('{{with .State}}{{.Status}}{{end}}', container), 'running');
  assert.equal(renderTemplate('{{if eq .State.Status "running"}}yes{{end}}', container), 'yes');
  assert.equal(renderTemplate('{{if not .State.Running}}no{{else}}yes{{end}}', container), 'yes');
});

test('range over maps (sorted keys) and lists, with variables', () => {
  assert.equal(renderTemplate('{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', container), '10.0.0.2');
  assert.equal(renderTemplate('{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}', container), 'a=1;b=2;');
  assert.equal(renderTemplate('{{range $i, $e := .Names}}{{$i}}:{{$e}} {{end}}', container), '0:x 1:y ');
  assert.equal(renderTemplate('{{range .Config.Cmd}}x{{else}}empty{{end}}', container), 'empty');
  assert.equal(renderTemplate('{{range .Names}}{{$.Id}}{{end}}', container), 'abcabc');
});

test('trim markers remove surrounding spaces', () => {
  assert.equal(renderTemplate('a  {{- .Id -}}  b', container), 'aabcb');
});

test('methods receive arguments', () => {
  const ctx = { Label: (k: string) => (k === 'x' ? 'y' : '') };
  assert.equal(renderTemplate('{{.Label "x"}}', ctx), 'y');
});

test('parse errors are reported', () => {
  assert.throws(() => renderTemplate('{{.Id', container), /unclosed action/);
  assert.throws(() => renderTemplate('{{nosuch .Id}}', container), /function "nosuch" not defined/);
  assert.throws(() => renderTemplate('{{if .Id}}x', container), /unexpected EOF/);
});
