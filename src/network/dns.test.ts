import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { test } from 'node:test';
import { DnsServer, RCODE_NOERROR, RCODE_NXDOMAIN, RCODE_SERVFAIL, TYPE_AAAA, decodeQuery, decodeResponse, encodeQuery, encodeResponse } from './dns.js';

test('a query round-trips through the codec and a response carries A records', () => {
  const q = encodeQuery(0x1234, 'web.example');
  const parsed = decodeQuery(q);
  assert.equal(parsed.id, 0x1234);
  assert.deepEqual(parsed.questions, [{ name: 'web.example', type: 1, class: 1 }]);
  const r = decodeResponse(encodeResponse(q, parsed, RCODE_NOERROR, ['10.0.0.2', '10.0.0.3']));
  assert.deepEqual(r, { id: 0x1234, rcode: 0, addresses: ['10.0.0.2', '10.0.0.3'] });
  assert.throws(() => decodeQuery(Buffer.alloc(5)));
});

function udpAsk(port: number, query: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    const t = setTimeout(() => {
      s.close();
      reject(new Error('no answer'));
    }, 5000);
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      resolve(m);
    });
    s.send(query, port, '127.0.0.1');
  });
}

function tcpAsk(port: number, query: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(query.length);
      sock.write(Buffer.concat([len, query]));
    });
    let buf = Buffer.alloc(0);
    sock.on('data', (c) => {
      buf = Buffer.concat([buf, c]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        sock.destroy();
        resolve(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      }
    });
    sock.on('error', reject);
  });
}

test('the server answers known names over UDP and TCP and forwards the rest to a local upstream', async () => {
  // A local upstream that answers NXDOMAIN for everything: nothing leaves the machine.
  const upstream = dgram.createSocket('udp4');
  await new Promise<void>((r) => upstream.bind(0, '127.0.0.1', r));
  const asked: string[] = [];
  upstream.on('message', (m, rinfo) => {
    const q = decodeQuery(m);
    asked.push(q.questions[0]!.name);
    upstream.send(encodeResponse(m, q, RCODE_NXDOMAIN), rinfo.port, rinfo.address);
  });
  const names: Record<string, string[]> = { web: ['10.9.0.2'], db: ['10.9.0.3'] };
  const server = new DnsServer({
    address: '127.0.0.1',
    resolve: (name) => names[name],
    upstreams: () => [{ host: '127.0.0.1', port: upstream.address().port }],
  });
  try {
    await server.start(0);
    assert.deepEqual(decodeResponse(await udpAsk(server.port, encodeQuery(1, 'WEB.'))).addresses, ['10.9.0.2']);
    assert.deepEqual(decodeResponse(await tcpAsk(server.port, encodeQuery(2, 'db'))).addresses, ['10.9.0.3']);
    const aaaa = decodeResponse(await udpAsk(server.port, encodeQuery(3, 'web', TYPE_AAAA)));
    assert.deepEqual(aaaa, { id: 3, rcode: RCODE_NOERROR, addresses: [] });
    const fwd = decodeResponse(await udpAsk(server.port, encodeQuery(4, 'elsewhere.test')));
    assert.equal(fwd.rcode, RCODE_NXDOMAIN);
    assert.deepEqual(asked, ['elsewhere.test']);
  } finally {
    await server.stop();
    upstream.close();
  }
});

test('without upstreams (an internal network) unknown names are refused, not forwarded', async () => {
  const server = new DnsServer({ address: '127.0.0.1', resolve: (n) => (n === 'db' ? ['10.9.0.3'] : undefined), upstreams: () => [] });
  try {
    await server.start(0);
    assert.equal(decodeResponse(await udpAsk(server.port, encodeQuery(6, 'elsewhere.test'))).rcode, 5);
    assert.deepEqual(decodeResponse(await udpAsk(server.port, encodeQuery(7, 'db'))).addresses, ['10.9.0.3']);
  } finally {
    await server.stop();
  }
});

test('an unreachable upstream gives SERVFAIL', async () => {
  const server = new DnsServer({ address: '127.0.0.1', resolve: () => undefined, upstreams: () => [{ host: '127.0.0.1', port: 9 }] });
  try {
    await server.start(0);
    const r = decodeResponse(await udpAsk(server.port, encodeQuery(5, 'nowhere.test')));
    assert.equal(r.rcode, RCODE_SERVFAIL);
  } finally {
    await server.stop();
  }
});
