/**
 * The client side of the mesh tunnel: mTLS to `endpointIP:15008` with ALPN `remora`, the
 * server's certificate checked against the trust bundle AND its URI SAN against the identity
 * discovery gave for that endpoint, then `CONNECT 127.0.0.1:<port> HTTP/1.1` and its 200. The
 * endpoint may be IPv6 (`ip` is then an IPv6 literal, dialled as is); the CONNECT target stays
 * the peer pod's own loopback, whatever family carried the tunnel.
 * What comes back is a socket carrying the app's bytes, ready for an HTTP client or a relay.
 *
 * TLS session resumption (issue 11 item 4): the session tickets a peer sends are kept per
 * client context, endpoint address AND expected identity, and offered on the next tunnel to
 * the same place, which then skips the certificate exchange and signatures (a resumed TLS 1.3
 * handshake is a PSK, with a fresh key exchange). The server still holds the verified client
 * certificate in the session (tunnel/server.ts reads the identity from it as before), and this
 * side still checks the server's identity (Node runs checkServerIdentity on resumed sessions
 * too). A rotated certificate is a new context: its tunnels start without tickets, so a peer
 * never sees the old certificate again through a resumed session.
 */
import tls from 'node:tls';
import type { SecureContext, TLSSocket } from 'node:tls';
import { TUNNEL_ALPN } from '../contract.js';
import type { ReadSink, SlabReader } from '../http1/readslab.js';
import { expectIdentity } from '../identity/identity.js';

export interface TunnelTarget {
  readonly ip: string;
  readonly tunnelPort: number;
  readonly targetPort: number;
  readonly identity: string;
}

/** A CONNECT answer is one short status line and an empty line. */
const MAX_RESPONSE_HEAD = 1024;
export const TUNNEL_CONNECT_TIMEOUT_MS = 10_000;

export class TunnelError extends Error {
  constructor(
    readonly reason: 'identity_mismatch' | 'untrusted' | 'alpn' | 'bad_connect' | 'error',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

function classify(err: Error & { code?: string }): TunnelError {
  if (err instanceof TunnelError) return err;
  const code = err.code ?? '';
  if (code === 'ERR_REMORA_IDENTITY_MISMATCH')
    return new TunnelError('identity_mismatch', err.message, { cause: err });
  if (/CERT|SIGNATURE|ISSUER|SELF_SIGNED|VERIFY/.test(code))
    return new TunnelError('untrusted', `${code}: ${err.message}`, { cause: err });
  return new TunnelError('error', err.message, { cause: err });
}

/** Most tickets kept per client context (one per endpoint and identity). */
const MAX_SESSIONS = 1024;
const sessions = new WeakMap<SecureContext, Map<string, Buffer>>();

function sessionKey(t: TunnelTarget): string {
  return `${t.ip} ${t.tunnelPort} ${t.identity}`;
}

function keepSession(context: SecureContext, key: string, session: Buffer): void {
  let m = sessions.get(context);
  if (m === undefined) sessions.set(context, (m = new Map()));
  else if (!m.has(key) && m.size >= MAX_SESSIONS) m.delete(m.keys().next().value as string);
  m.set(key, session);
}

/**
 * With `reader` (an HTTP/1.1 client connection's, http1/readslab.ts), the socket reads through
 * it from the start: `tls.connect`'s `onread`, so TLSWrap decrypts into slab buffers and no read
 * goes through the Readable. The CONNECT answer is read through it too; the reader's sink is put
 * back before the socket is handed on. An HTTP/1.1 server never speaks before a request, so bytes
 * after the answer fail the tunnel (bad_connect) instead of passing for a response. Without it
 * (an HTTP/2 session, an opaque relay) the socket comes paused, any early bytes unshifted.
 */
export function connectTunnel(
  t: TunnelTarget,
  context: SecureContext,
  timeoutMs = TUNNEL_CONNECT_TIMEOUT_MS,
  reader?: SlabReader,
): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const key = sessionKey(t);
    let pendingSession: Buffer | undefined = undefined;
    let done = false;
    const session = sessions.get(context)?.get(key);
    // With a reader: the connection's own sink, put back once the CONNECT answer is read.
    const connectionSink = reader?.sink;
    const socket = tls.connect({
      host: t.ip,
      port: t.tunnelPort,
      secureContext: context,
      ALPNProtocols: [TUNNEL_ALPN],
      checkServerIdentity: expectIdentity(t.identity),
      ...(session !== undefined ? { session } : {}),
      ...(reader !== undefined ? { onread: reader.onread } : {}),
    });
    // TLS 1.3 tickets arrive after the handshake (with the CONNECT answer, or later); only
    // those of a tunnel that passed every check are kept (`done` without an error).
    socket.on('session', (s: Buffer) => {
      if (done && !socket.destroyed) keepSession(context, key, s);
      else pendingSession = s;
    });
    // For messages only: an IPv6 endpoint reads as [ip]:port.
    const where = t.ip.includes(':') ? `[${t.ip}]:${t.tunnelPort}` : `${t.ip}:${t.tunnelPort}`;
    socket.setNoDelay(true);
    const fail = (err: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      // A ticket from a peer that failed a check is never offered again.
      pendingSession = undefined;
      sessions.get(context)?.delete(key);
      socket.destroy();
      reject(classify(err));
    };
    const timer = setTimeout(() => fail(new TunnelError('error', `tunnel to ${where} timed out`)), timeoutMs);
    const onClose = (): void =>
      fail(new TunnelError('bad_connect', `tunnel to ${where} closed during setup`));
    socket.once('error', fail);
    socket.once('close', onClose);
    socket.once('secureConnect', () => {
      if (socket.alpnProtocol !== TUNNEL_ALPN) {
        fail(new TunnelError('alpn', `peer ${t.ip} did not select ALPN ${TUNNEL_ALPN}`));
        return;
      }
      socket.write(`CONNECT 127.0.0.1:${t.targetPort} HTTP/1.1\r\nhost: 127.0.0.1:${t.targetPort}\r\n\r\n`);
    });
    let head: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      if (done) return;
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > MAX_RESPONSE_HEAD) fail(new TunnelError('bad_connect', 'CONNECT answer too long'));
        return;
      }
      const status = /^HTTP\/1\.1 (\d{3})/.exec(head.subarray(0, end).toString('latin1'))?.[1];
      if (status !== '200') {
        fail(
          new TunnelError(
            'bad_connect',
            `tunnel CONNECT refused: ${head.subarray(0, Math.min(end, 200)).toString('latin1')}`,
          ),
        );
        return;
      }
      const rest = head.subarray(end + 4);
      if (reader === undefined) {
        socket.off('data', onData);
        socket.pause();
        if (rest.length > 0) socket.unshift(rest);
      } else if (rest.length > 0) {
        fail(
          new TunnelError(
            'bad_connect',
            'tunnel peer sent bytes after the CONNECT answer, before any request',
          ),
        );
        return;
      } else {
        reader.sink = connectionSink as ReadSink;
      }
      done = true;
      clearTimeout(timer);
      socket.off('error', fail);
      socket.off('close', onClose);
      if (pendingSession !== undefined) keepSession(context, key, pendingSession);
      resolve(socket);
    };
    if (reader === undefined) socket.on('data', onData);
    else reader.sink = onData;
  });
}
