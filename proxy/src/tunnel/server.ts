/**
 * The server side of the mesh tunnel (port 15008): mTLS with a client certificate required and
 * verified against the trust bundle, ALPN `remora`, then one `CONNECT 127.0.0.1:<port>` head.
 * The decrypted socket then goes to the inbound stack like a redirected connection, with its
 * target port and the peer's verified SPIFFE identity attached.
 *
 * Why HTTP/1.1 CONNECT (one TLS connection per tunnelled TCP connection) rather than h2 CONNECT
 * streams: see docs/mtls.md. HTTP clients reuse tunnels through keep-alive pools.
 */
import type { Socket } from 'node:net';
import tls from 'node:tls';
import type { TLSSocket } from 'node:tls';
import { PORTS, TUNNEL_ALPN } from '../contract.js';
import { parsePort } from '../values.js';
import type { Target } from '../config/config.js';
import { tunnelContextOptions, uriSans } from '../identity/identity.js';
import type { IdentityMaterial } from '../identity/identity.js';
import type { Logger } from '../log.js';
import type { MeshMetrics } from './metrics.js';

export const kTunnel = Symbol('remora.tunnel');

export interface TunnelInfo {
  readonly target: Target;
  /** the client's verified SPIFFE identity */
  readonly peerIdentity: string;
}

type TunnelSocket = Socket & { [kTunnel]?: TunnelInfo };

export function tunnelInfo(socket: Socket): TunnelInfo | undefined {
  return (socket as TunnelSocket)[kTunnel];
}

const MAX_CONNECT_HEAD = 4096;
const CONNECT_TIMEOUT_MS = 10_000;
const APP_HOST = '127.0.0.1';
/** `[::1]` asks for the app's IPv6 loopback (an app bound to ::1 only); the rest mean 127.0.0.1. */
const APP_HOST6 = '::1';
/** The proxy's own ports are never a tunnel target: the admin API must stay local to the pod. */
const FORBIDDEN_PORTS: ReadonlySet<number> = new Set(Object.values(PORTS));

export interface TunnelServerOptions {
  readonly log: Logger;
  readonly metrics: MeshMetrics;
  /** hands a decrypted, CONNECTed socket to the inbound stack */
  readonly accept: (socket: Socket) => void;
}

export interface TunnelServer {
  /** for the 15008 listener: each raw TCP connection goes through here */
  readonly accept: (raw: Socket) => void;
  /** a new certificate (rotation): new handshakes use it, live connections keep theirs */
  setIdentity(m: IdentityMaterial): void;
  close(): void;
}

export function createTunnelServer(o: TunnelServerOptions): TunnelServer {
  let hasIdentity = false;
  const server = tls.createServer({
    requestCert: true,
    // Verified below instead: Node would drop a failed peer silently, without a reason to log.
    rejectUnauthorized: false,
    ALPNProtocols: [TUNNEL_ALPN],
    minVersion: 'TLSv1.3',
    // Node's default is 120 s: a peer that opens the port and stalls the handshake is cut at the
    // same bound as one that stalls its CONNECT head.
    handshakeTimeout: CONNECT_TIMEOUT_MS,
  });
  const refuse = (socket: Socket, reason: Parameters<MeshMetrics['failed']>[1], detail: string): void => {
    o.metrics.failed('inbound', reason);
    o.log.warn(
      {
        event: 'tls_handshake_failed',
        direction: 'inbound',
        reason,
        detail,
        peer: `${socket.remoteAddress}:${socket.remotePort}`,
      },
      `mesh tunnel refused: ${detail}`,
    );
    socket.destroy();
  };

  server.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) => {
    const code = err.code ?? '';
    const reason = /PEER_DID_NOT_RETURN_A_CERTIFICATE|CERTIFICATE_REQUIRED/i.test(`${code} ${err.message}`)
      ? 'no_client_cert'
      : /ALPN|APPLICATION_PROTOCOL/i.test(`${code} ${err.message}`)
        ? 'alpn'
        : /CERT|VERIFY|ISSUER|SIGNATURE|UNKNOWN_CA/i.test(`${code} ${err.message}`)
          ? 'untrusted'
          : 'error';
    refuse(socket, reason, `${code} ${err.message}`.trim());
  });

  server.on('secureConnection', (socket: TLSSocket) => {
    socket.on('error', () => socket.destroy());
    if (!socket.authorized) {
      const peerCert = socket.getPeerCertificate();
      if (peerCert === null || Object.keys(peerCert).length === 0)
        refuse(socket, 'no_client_cert', 'client sent no certificate');
      else
        refuse(socket, 'untrusted', `client certificate not trusted: ${String(socket.authorizationError)}`);
      return;
    }
    if (socket.alpnProtocol !== TUNNEL_ALPN) {
      refuse(socket, 'alpn', `client did not offer ALPN ${TUNNEL_ALPN}`);
      return;
    }
    const uris = uriSans(socket.getPeerCertificate());
    if (uris.length !== 1 || !(uris[0] as string).startsWith('spiffe://')) {
      refuse(socket, 'identity_mismatch', `client certificate does not name one SPIFFE identity`);
      return;
    }
    const peerIdentity = uris[0] as string;
    readConnect(socket, (err, target, rest) => {
      if (err !== undefined || target === undefined) {
        o.metrics.failed('inbound', 'bad_connect');
        o.log.warn(
          { event: 'tunnel_connect_refused', peerIdentity, reason: err },
          `mesh tunnel CONNECT refused: ${err ?? 'no port'}`,
        );
        socket.end(`HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
        return;
      }
      socket.write('HTTP/1.1 200 OK\r\n\r\n');
      (socket as TunnelSocket)[kTunnel] = { target, peerIdentity };
      // Paused while the bytes read past the head go back; the stack's reader then takes over
      // (an explicitly paused stream would not start flowing by itself).
      socket.pause();
      if (rest !== undefined && rest.length > 0) socket.unshift(rest);
      o.accept(socket);
      socket.resume();
    });
  });

  return {
    accept: (raw) => {
      if (!hasIdentity) {
        // No certificate yet: nothing to prove who we are with.
        o.metrics.failed('inbound', 'no_certificate');
        raw.destroy();
        return;
      }
      server.emit('connection', raw);
    },
    setIdentity: (m) => {
      server.setSecureContext(tunnelContextOptions(m));
      hasIdentity = true;
    },
    close: () => server.close(),
  };
}

/**
 * Reads one `CONNECT 127.0.0.1:<port> HTTP/1.1` head (or `localhost:<port>`, `[::1]:<port>`);
 * the bytes after it are handed back.
 */
function readConnect(
  socket: TLSSocket,
  done: (err: string | undefined, target?: Target, rest?: Buffer) => void,
): void {
  let head: Buffer = Buffer.alloc(0);
  let finished = false;
  const finish = (err: string | undefined, target?: Target, rest?: Buffer): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    socket.off('data', onData);
    done(err, target, rest ?? Buffer.alloc(0));
  };
  const timer = setTimeout(() => finish('no CONNECT within the timeout'), CONNECT_TIMEOUT_MS);
  const onData = (chunk: Buffer): void => {
    head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) {
      if (head.length > MAX_CONNECT_HEAD) finish('CONNECT head too long');
      return;
    }
    const line = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
    const m = /^CONNECT (127\.0\.0\.1|localhost|\[::1\]):(\d{1,5}) HTTP\/1\.1$/.exec(line);
    const parsed = m ? parsePort(m[2] as string) : undefined;
    const port = parsed?.ok ? parsed.value : NaN;
    if (!m || !parsed?.ok) finish(`not a CONNECT to a local port: ${JSON.stringify(line.slice(0, 80))}`);
    else if (FORBIDDEN_PORTS.has(port)) finish(`port ${port} belongs to the proxy`);
    else finish(undefined, { host: m[1] === '[::1]' ? APP_HOST6 : APP_HOST, port }, head.subarray(end + 4));
  };
  socket.on('data', onData);
  socket.once('close', () => finish('closed before CONNECT'));
}
