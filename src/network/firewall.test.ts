import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderRules } from './firewall.js';

test('renderRules writes isolation, egress, DNAT and masquerade rules for the state', () => {
  const text = renderRules('BX', {
    networks: [
      { bridge: 'b0', subnet: '10.1.0.0/24', internal: false, masquerade: true },
      { bridge: 'b1', subnet: '10.2.0.0/24', internal: true, masquerade: true, icc: false },
    ],
    ports: [{ proto: 'udp', hostIp: '127.0.0.1', hostPort: 5353, containerIp: '10.1.0.2', containerPort: 53, bridge: 'b0' }],
  });
  const lines = text.split('\n');
  assert.ok(lines.includes(':BX-FORWARD - [0:0]'));
  assert.ok(lines.includes('-A BX-ISOLATION-1 -i b0 ! -o b0 -j BX-ISOLATION-2'));
  assert.ok(lines.includes('-A BX-ISOLATION-1 -i b1 ! -o b1 -j DROP'));
  assert.ok(lines.includes('-A BX-ISOLATION-2 -o b1 -j DROP'));
  assert.ok(lines.includes('-A BX-FORWARD -i b0 ! -o b0 -j ACCEPT'));
  assert.ok(!lines.includes('-A BX-FORWARD -i b1 ! -o b1 -j ACCEPT'), 'internal networks never leave');
  assert.ok(lines.includes('-A BX-PORTS -d 127.0.0.1/32 -p udp -m udp --dport 5353 -j DNAT --to-destination 10.1.0.2:53'));
  assert.ok(lines.includes('-A BX-POSTROUTING -s 10.1.0.0/24 ! -o b0 -j MASQUERADE'));
  assert.ok(!lines.some((l) => l.includes('-s 10.2.0.0/24')), 'no masquerade for an internal network');
  assert.ok(lines.includes('-A BX-FORWARD -i b0 -o b0 -j ACCEPT'));
  assert.ok(lines.includes('-A BX-FORWARD -i b1 -o b1 -j DROP'), 'enable_icc=false');
  assert.equal(lines.filter((l) => l === 'COMMIT').length, 2);
});
