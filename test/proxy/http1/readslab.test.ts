/**
 * The upstream client's reads through net's `onread` with slab buffers (proxy/src/http1/readslab.ts),
 * on real sockets: bytes already handed on are never overwritten by later reads (across sockets
 * and slabs), a paused socket stops reading (the sender is held back), and a socket handed on
 * after a 101 is read through its Readable again, with backpressure.
 */
import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import tls from 'node:tls';
import type { TLSSocket } from 'node:tls';
import { newRoot } from '../../../injector/src/ca/root.js';
import { identityMaterial } from '../../helpers/workload-cert.js';
import { afterEach, describe, expect, it } from 'vitest';
import { ClientPool } from '../../../proxy/src/http1/pool.js';
import { CLAIM, SLAB_SIZE, SlabReader, takeReads } from '../../../proxy/src/http1/readslab.js';

/** byte i of stream `k`: a pattern that differs per stream and per position */
const pattern = (k: number, n: number): Buffer => {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + k * 31 + (i >> 8)) & 0xff;
  return b;
};

const servers: net.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    await new Promise<void>((r) => s.close(() => r()));
  }
});

async function listen(onConn: (s: Socket) => void): Promise<number> {
  const server = net.createServer(onConn);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

/** Writes `data` in pieces of varied size with a pause between them, so they arrive as many reads. */
function dribble(s: Socket, data: Buffer, then: () => void): void {
  let at = 0;
  let i = 0;
  const next = (): void => {
    if (at >= data.length) return then();
    const n = [1, 300, 5000, 17000, 40][i++ % 5] as number;
    s.write(data.subarray(at, at + n));
    at += n;
    setTimeout(next, 1);
  };
  next();
}

describe('SlabReader (net onread with slab buffers)', () => {
  it('chunks kept from earlier reads stay intact over many slabs, with two sockets reading at once', async () => {
    const total = 6 * SLAB_SIZE; // well past one slab per socket
    const port = await listen((s) => {
      s.once('data', (c: Buffer) => {
        const k = c[0] as number;
        dribble(s, pattern(k, total), () => s.end());
      });
    });
    const read = (k: number): Promise<{ chunks: Buffer[]; copy: Buffer }> =>
      new Promise((resolve, reject) => {
        const chunks: Buffer[] = [];
        const copies: Buffer[] = [];
        const rd = new SlabReader((c) => {
          chunks.push(c); // the view itself, kept: a later read must not overwrite it
          copies.push(Buffer.from(c));
        });
        const s = net.connect({ host: '127.0.0.1', port, onread: rd.onread });
        s.on('connect', () => s.write(Buffer.from([k])));
        s.on('end', () => {
          s.end();
          resolve({ chunks, copy: Buffer.concat(copies) });
        });
        s.on('error', reject);
      });
    const [a, b] = await Promise.all([read(1), read(2)]);
    for (const [k, got] of [
      [1, a],
      [2, b],
    ] as const) {
      expect(got.chunks.length).toBeGreaterThan(total / CLAIM); // many reads, many claims
      expect(got.copy.equals(pattern(k, total))).toBe(true); // each read was right when it came
      expect(Buffer.concat(got.chunks).equals(pattern(k, total))).toBe(true); // and still is
    }
  });

  it('pause() stops reading: the sender is held back until resume(), then everything arrives', async () => {
    const total = 64 * 1024 * 1024;
    let written = 0;
    let finished = false;
    const port = await listen((s) => {
      const c = Buffer.alloc(64 * 1024, 0x61);
      const pump = (): void => {
        while (written < total) {
          written += c.length;
          if (!s.write(c)) return void s.once('drain', pump);
        }
        s.end(() => (finished = true));
      };
      pump();
    });
    let got = 0;
    const rd = new SlabReader((c) => {
      got += c.length;
      // reads come after connect: `sock` is set by then
      if (got >= 1024 * 1024 && got - c.length < 1024 * 1024) sock.pause();
    });
    const sock = net.connect({ host: '127.0.0.1', port, onread: rd.onread });
    await new Promise<void>((r) => setTimeout(r, 300));
    // paused after 1 MiB: only socket buffers' worth more has left the sender
    expect(finished).toBe(false);
    expect(written).toBeLessThan(total / 2);
    const gotWhilePaused = got;
    await new Promise<void>((r) => setTimeout(r, 100));
    expect(got).toBe(gotWhilePaused); // no read while paused
    await new Promise<void>((resolve) => {
      sock.on('end', () => {
        sock.end();
        resolve();
      });
      sock.resume();
    });
    expect(got).toBe(total);
  });

  it('after a 101 the socket is handed on and read through its Readable: later bytes, with backpressure', async () => {
    const after = pattern(5, 8 * 1024 * 1024);
    let sentAll = false;
    const port = await listen((s) => {
      s.once('data', () => {
        s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\nearly');
        setTimeout(() => s.end(after, () => (sentAll = true)), 30);
      });
    });
    const pool = new ClientPool(`127.0.0.1:${port}`, { keepAliveTimeout: 4_000, connectTimeout: 2_000 });
    try {
      const socket = await new Promise<Socket>((resolve, reject) => {
        pool.dispatch(
          { method: 'GET', path: '/ws', headers: [], upgrade: 'x' },
          { onUpgrade: (_st, _raw, sock) => resolve(sock), onError: reject },
        );
      });
      // handed over paused: nobody reads for a while, the 8 MiB must wait in the sender
      await new Promise<void>((r) => setTimeout(r, 300));
      expect(sentAll).toBe(false);
      const chunks: Buffer[] = [];
      await new Promise<void>((resolve, reject) => {
        socket.on('data', (c: Buffer) => chunks.push(c));
        socket.on('end', () => resolve());
        socket.on('error', reject);
        socket.resume();
      });
      socket.destroy();
      const all = Buffer.concat(chunks);
      expect(all.subarray(0, 5).toString()).toBe('early');
      expect(all.subarray(5).equals(after)).toBe(true);
    } finally {
      await pool.destroy();
    }
  });
});

describe('takeReads: an accepted socket read as if it had been given onread', () => {
  it('reads go to the sink (no data event), bytes unshifted before still come as data, pause holds the sender back, toStream gives reads back', async () => {
    const got: Buffer[] = [];
    const viaData: Buffer[] = [];
    let accepted!: Socket;
    let taken = false;
    let again = true;
    const ready = new Promise<void>((resolve) => {
      void listen((s) => {
        accepted = s;
        s.pause();
        s.unshift(Buffer.from('early:'));
        const rd = new SlabReader((c) => got.push(Buffer.from(c)));
        taken = takeReads(s, rd);
        again = takeReads(s, new SlabReader(() => undefined)); // a second time: already taken
        s.on('data', (c: Buffer) => viaData.push(Buffer.from(c)));
        (s as Socket & { rd?: SlabReader }).rd = rd;
        s.resume();
        resolve();
      }).then((port) => {
        const c = net.connect(port, '127.0.0.1');
        clients.push(c);
      });
    });
    await ready;
    const c = clients.at(-1) as Socket;
    await new Promise<void>((r) => (c.connecting ? c.once('connect', () => r()) : r()));
    expect(taken).toBe(true);
    expect(again).toBe(false);
    const until = async (f: () => boolean, what: string): Promise<void> => {
      for (let i = 0; i < 300 && !f(); i++) await new Promise((r) => setTimeout(r, 10));
      if (!f()) throw new Error(`timed out waiting for ${what}`);
    };
    await until(() => viaData.length === 1, 'the unshifted bytes');
    expect(Buffer.concat(viaData).toString()).toBe('early:');
    c.write('one');
    await until(() => Buffer.concat(got).toString() === 'one', 'the first read through the sink');
    expect(viaData).toHaveLength(1);
    // Paused: the handle stops reading; a large write stays queued at the sender.
    accepted.pause();
    const big = pattern(3, 4 * 1024 * 1024);
    c.write(big);
    await new Promise((r) => setTimeout(r, 200));
    const held = Buffer.concat(got).length;
    expect(held).toBeLessThan(1 + 3 + big.length / 2);
    expect(c.writableLength).toBeGreaterThan(0);
    accepted.resume();
    await until(() => Buffer.concat(got).length === 3 + big.length, 'the rest after resume');
    expect(Buffer.concat(got).subarray(3).equals(big)).toBe(true);
    // Handed on: reads go into the Readable again.
    (accepted as Socket & { rd: SlabReader }).rd.toStream(accepted);
    c.write('two');
    await until(() => viaData.length === 2, 'a data event after toStream');
    expect(viaData[1]?.toString()).toBe('two');
    expect(Buffer.concat(got).length).toBe(3 + big.length);
    accepted.destroy();
  });
});

const clients: Socket[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.destroy();
});

describe('takeReads on an accepted TLS socket (the mesh inbound tunnel: TLSWrap decrypts into the buffer given)', () => {
  it('decrypted bytes reach the sink, none as data events, the whole stream intact', async () => {
    const m = identityMaterial(newRoot('cluster.local'), 'spiffe://cluster.local/ns/t/sa/s');
    const got: Buffer[] = [];
    let dataEvents = 0;
    let taken = false;
    let accepted: TLSSocket | undefined;
    const server = tls.createServer({ key: m.keyPem, cert: m.certPem }, (s) => {
      accepted = s;
      taken = takeReads(s, new SlabReader((c) => got.push(Buffer.from(c))));
      s.on('data', () => dataEvents++);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const c = tls.connect({
      port: (server.address() as AddressInfo).port,
      host: '127.0.0.1',
      ca: m.trustBundle,
      servername: 'localhost',
      checkServerIdentity: () => undefined,
    });
    try {
      await new Promise<void>((r, j) => c.once('secureConnect', () => r()).once('error', j));
      const data = pattern(5, 300_000);
      c.write(data);
      for (let i = 0; i < 300 && Buffer.concat(got).length < data.length; i++)
        await new Promise((r) => setTimeout(r, 10));
      expect(taken).toBe(true);
      expect(Buffer.concat(got).equals(data)).toBe(true);
      expect(dataEvents).toBe(0);
    } finally {
      c.destroy();
      accepted?.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
