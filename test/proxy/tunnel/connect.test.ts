/**
 * The tunnel client (proxy/src/tunnel/connect.ts) against the real tunnel server
 * (tunnel/server.ts) on loopback, with certificates from the identity CA: TLS session
 * resumption on the second tunnel to the same endpoint and identity, the caller's verified
 * identity still known to the server on a resumed session, and no ticket offered where it
 * does not belong (another expected identity, a rotated client certificate). Then the reads of
 * an HTTP/1.1 client connection through the tunnel (a slab reader, `onread`): a real pool over
 * real tunnels to a node:http server behind the tunnel server, bodies intact and backpressure
 * through TLS, and a peer that speaks before any request refused.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import tls from 'node:tls';
import type { SecureContext, TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newRoot } from '../../../injector/src/ca/root.js';
import type { IdentityMaterial } from '../../../proxy/src/identity/identity.js';
import { identityMaterial } from '../../helpers/workload-cert.js';
import { startLoopbackTunnel } from '../../helpers/tunnel-server.js';
import type { LoopbackTunnel } from '../../helpers/tunnel-server.js';
import { Registry } from '../../../proxy/src/metrics/registry.js';
import { TUNNEL_ALPN } from '../../../proxy/src/contract.js';
import { ClientPool } from '../../../proxy/src/http1/pool.js';
import { SlabReader } from '../../../proxy/src/http1/readslab.js';
import type { Connector } from '../../../proxy/src/http1/connection.js';
import { TunnelError, connectTunnel } from '../../../proxy/src/tunnel/connect.js';
import { tunnelInfo } from '../../../proxy/src/tunnel/server.js';

const TD = 'connect.test';
const ID_CLIENT = `spiffe://${TD}/ns/shop/sa/client`;
const ID_SERVER = `spiffe://${TD}/ns/shop/sa/web`;
const root = newRoot(TD);

const material = (identity: string): IdentityMaterial => identityMaterial(root, identity);

function clientContext(identity: string): SecureContext {
  const m = material(identity);
  return tls.createSecureContext({
    key: m.keyPem,
    cert: m.certPem,
    ca: m.trustBundle,
    minVersion: 'TLSv1.3',
  });
}

let tunnel: LoopbackTunnel;
let port = 0;
/** the peer identity the server recorded for each accepted tunnel, in order */
const accepted: (string | undefined)[] = [];

beforeAll(async () => {
  tunnel = await startLoopbackTunnel(material(ID_SERVER), new Registry(), (s) =>
    accepted.push(tunnelInfo(s)?.peerIdentity),
  );
  port = tunnel.port;
});
afterAll(() => tunnel.close());

/** Opens a tunnel, lets the session ticket arrive, and reports whether the session was resumed. */
async function once(ctx: SecureContext, identity = ID_SERVER): Promise<boolean> {
  const s = (await connectTunnel(
    { ip: '127.0.0.1', tunnelPort: port, targetPort: 8080, identity },
    ctx,
  )) as TLSSocket;
  const reused = s.isSessionReused();
  // TLS 1.3 tickets come after the handshake: read once so they are processed, then close.
  s.resume();
  await new Promise((r) => setTimeout(r, 50));
  s.destroy();
  return reused;
}

describe('tunnel client TLS session resumption', () => {
  it('the second tunnel to the same endpoint and identity resumes the session; the server still knows the caller', async () => {
    const ctx = clientContext(ID_CLIENT);
    const before = accepted.length;
    expect(await once(ctx)).toBe(false);
    expect(await once(ctx)).toBe(true);
    expect(await once(ctx)).toBe(true);
    expect(accepted.slice(before)).toEqual([ID_CLIENT, ID_CLIENT, ID_CLIENT]);
  });

  it('a ticket is never offered for another expected identity: that tunnel is checked in full and refused', async () => {
    const ctx = clientContext(ID_CLIENT);
    expect(await once(ctx)).toBe(false);
    const err = await once(ctx, `spiffe://${TD}/ns/shop/sa/other`).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TunnelError);
    expect((err as TunnelError).reason).toBe('identity_mismatch');
    // and the good ticket is still there for the right identity
    expect(await once(ctx)).toBe(true);
  });

  it('a rotated client certificate (a new context) starts without tickets', async () => {
    const first = clientContext(ID_CLIENT);
    expect(await once(first)).toBe(false);
    expect(await once(first)).toBe(true);
    expect(await once(clientContext(ID_CLIENT))).toBe(false);
  });
});

/** byte i of a body: a pattern, so a byte overwritten or out of place shows */
const pattern = (n: number): Buffer => {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 9)) & 0xff;
  return b;
};

describe('an HTTP/1.1 client connection reads the tunnel through its slab reader', () => {
  const big = pattern(3 * 1024 * 1024);
  const huge = pattern(32 * 1024 * 1024);
  let hugeSent = false;
  const app = http.createServer((req, res) => {
    if (req.url === '/huge') {
      res.end(huge, () => (hugeSent = true));
      return;
    }
    res.end(req.url === '/big' ? big : 'small');
  });
  let behind: LoopbackTunnel;
  const clientSockets: Socket[] = [];
  beforeAll(async () => {
    behind = await startLoopbackTunnel(material(ID_SERVER), new Registry(), (s) => app.emit('connection', s));
  });
  afterAll(async () => {
    await behind.close();
    app.close();
  });

  const tunnelPool = (): ClientPool => {
    const ctx = clientContext(ID_CLIENT);
    const connect: Connector = (done, reader) => {
      connectTunnel(
        { ip: '127.0.0.1', tunnelPort: behind.port, targetPort: 8080, identity: ID_SERVER },
        ctx,
        5_000,
        reader,
      ).then(
        (s) => {
          clientSockets.push(s);
          done(null, s, reader !== undefined);
        },
        (err: Error) => done(err),
      );
    };
    return new ClientPool('127.0.0.1:8080', { keepAliveTimeout: 4_000, connectTimeout: 5_000, connect });
  };

  const get = (
    pool: ClientPool,
    path: string,
    onData?: (resume: () => void) => boolean,
  ): Promise<{ status: number; body: Buffer }> =>
    new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let status = 0;
      let resume: () => void = () => undefined;
      pool.dispatch(
        { method: 'GET', path, headers: ['host', '127.0.0.1:8080'], body: null },
        {
          onHeaders: (st: number, _raw: string[], r: () => void) => {
            status = st;
            resume = r;
            return true;
          },
          onData: (c: Buffer) => {
            chunks.push(c); // the views themselves: a later read must not overwrite them
            return onData?.(resume) ?? true;
          },
          onComplete: () => resolve({ status, body: Buffer.concat(chunks) }),
          onError: reject,
        },
      );
    });

  it('bodies arrive intact over keep-alive, with no read through the Readable (no data listener)', async () => {
    const pool = tunnelPool();
    const before = clientSockets.length;
    try {
      for (let i = 0; i < 3; i++) {
        const r = await get(pool, i === 1 ? '/big' : '/');
        expect(r.status).toBe(200);
        expect(r.body.equals(i === 1 ? big : Buffer.from('small'))).toBe(true);
      }
      expect(clientSockets.length - before).toBe(1); // one tunnel, reused
      const s = clientSockets.at(-1) as Socket;
      expect(s.listenerCount('data')).toBe(0);
    } finally {
      await pool.destroy();
    }
  });

  it('a paused response holds the sender back through TLS, then arrives whole', async () => {
    const pool = tunnelPool();
    try {
      let paused = false;
      let resumeLater: () => void = () => undefined;
      const done = get(pool, '/huge', (resume) => {
        if (paused) return true;
        paused = true;
        resumeLater = resume;
        return false;
      });
      await new Promise((r) => setTimeout(r, 400));
      expect(paused).toBe(true);
      expect(hugeSent).toBe(false); // 32 MiB cannot all sit in socket buffers
      resumeLater();
      const r = await done;
      expect(r.body.equals(huge)).toBe(true);
    } finally {
      await pool.destroy();
    }
  });

  it('a peer that speaks right after its CONNECT answer, before any request, fails the tunnel (bad_connect); a relay still gets those bytes', async () => {
    const m = material(ID_SERVER);
    const liar = tls.createServer({ key: m.keyPem, cert: m.certPem, ALPNProtocols: [TUNNEL_ALPN] }, (s) => {
      s.once('data', () => s.write('HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n'));
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => liar.listen(0, '127.0.0.1', r));
    const target = {
      ip: '127.0.0.1',
      tunnelPort: (liar.address() as AddressInfo).port,
      targetPort: 8080,
      identity: ID_SERVER,
    };
    try {
      const ctx = clientContext(ID_CLIENT);
      const sunk: Buffer[] = [];
      const err = await connectTunnel(target, ctx, 5_000, new SlabReader((c) => sunk.push(c))).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(TunnelError);
      expect((err as TunnelError).reason).toBe('bad_connect');
      expect((err as TunnelError).message).toMatch(/bytes after the CONNECT answer/);
      expect(sunk).toEqual([]); // nothing passed on as if it were a response
      // Without a reader (an opaque relay, a server-first protocol) the bytes are kept for the reader.
      const s = await connectTunnel(target, ctx, 5_000);
      const first = await new Promise<Buffer>((r) => {
        s.once('data', r);
        s.resume(); // it comes paused
      });
      s.destroy();
      expect(first.toString('latin1')).toMatch(/^HTTP\/1\.1 200 OK\r\ncontent-length: 0/);
    } finally {
      await new Promise((r) => liar.close(r));
    }
  });
});
