/**
 * The client side of the mesh tunnel: mTLS to `endpointIP:15008` with ALPN `remora`, the
 * server's certificate checked against the trust bundle AND its URI SAN against the identity
 * discovery gave for that endpoint, then `CONNECT 127.0.0.1:<port> HTTP/1.1` and its 200. The
 * endpoint may be IPv6 (`ip` is then an IPv6 literal, dialled as is); the CONNECT target stays
 * the peer pod's own loopback, whatever family carried the tunnel.
 * What comes back is a socket carrying the app's bytes, ready for an HTTP client or a relay.
 */
import tls from 'node:tls';
import type { SecureContext, TLSSocket } from 'node:tls';
import { TUNNEL_ALPN } from '../contract.js';
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

export function connectTunnel(
  t: TunnelTarget,
  context: SecureContext,
  timeoutMs = TUNNEL_CONNECT_TIMEOUT_MS,
): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: t.ip,
      port: t.tunnelPort,
      secureContext: context,
      ALPNProtocols: [TUNNEL_ALPN],
      checkServerIdentity: expectIdentity(t.identity),
    });
    // For messages only: an IPv6 endpoint reads as [ip]:port.
    const where = t.ip.includes(':') ? `[${t.ip}]:${t.tunnelPort}` : `${t.ip}:${t.tunnelPort}`;
    socket.setNoDelay(true);
    let done = false;
    const fail = (err: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
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
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > MAX_RESPONSE_HEAD) fail(new TunnelError('bad_connect', 'CONNECT answer too long'));
        return;
      }
      socket.off('data', onData);
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
      socket.pause();
      if (rest.length > 0) socket.unshift(rest);
      done = true;
      clearTimeout(timer);
      socket.off('error', fail);
      socket.off('close', onClose);
      resolve(socket);
    };
    socket.on('data', onData);
  });
}
