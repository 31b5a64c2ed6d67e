import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatList, resolveFormat, tabwrite } from './format.js';

test('tabwrite pads cells to the widest plus three, min ten', () => {
  assert.equal(tabwrite(['A\tBB\tC', 'xxxxxxxxxxxx\ty\tz']), 'A              BB        C\nxxxxxxxxxxxx   y         z\n');
});

test('table formats render a header from field names', () => {
  const rows = [{ ID: 'abc', Name: 'one' }, { ID: 'defghi', Name: 'two' }];
  const out = formatList(rows, { format: undefined, defaultFormat: 'table {{.ID}}\t{{.Name}}', headers: { ID: 'CONTAINER ID', Name: 'NAMES' } });
  assert.equal(out, 'CONTAINER ID   NAMES\nabc            one\ndefghi         two\n');
});

test('raw and json formats print one line per row', () => {
  const rows = [{ ID: 'a' }, { ID: 'b' }];
  assert.equal(formatList(rows, { format: '{{.ID}}', defaultFormat: 'table {{.ID}}', headers: {} }), 'a\nb\n');
  assert.equal(formatList(rows, { format: 'json', defaultFormat: 'table {{.ID}}', headers: {} }), '{"ID":"a"}\n{"ID":"b"}\n');
});

test('table with an escaped tab and a custom template', () => {
  assert.deepEqual(resolveFormat('table {{.ID}}\\t{{.Name}}', 'table {{.X}}'), { table: true, template: '{{.ID}}\t{{.Name}}' });
  assert.deepEqual(resolveFormat('table', 'table {{.X}}'), { table: true, template: '{{.X}}' });
});

import { displayPorts, ellipsis, goQuote } from './commands/containers.js';

test('commands are cut to twenty characters, then quoted like Go', () => {
  assert.equal(goQuote(ellipsis('sh -c "echo line1; echo line2 >&2"', 20)), '"sh -c \\"echo line1; …"');
  assert.equal(goQuote('a\tb\x01'), '"a\\tb\\x01"');
});

test('ports print like docker: same-number ranges grouped, other mappings one by one', () => {
  assert.equal(
    displayPorts([
      { IP: '0.0.0.0', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' },
      { IP: '::', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' },
      { PrivatePort: 53, Type: 'udp' },
      { IP: '0.0.0.0', PrivatePort: 9000, PublicPort: 9000, Type: 'tcp' },
      { IP: '0.0.0.0', PrivatePort: 9001, PublicPort: 9001, Type: 'tcp' },
    ]),
    '53/udp, 0.0.0.0:9000-9001->9000-9001/tcp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp',
  );
});
