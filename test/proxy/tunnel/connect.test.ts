/**
 * The tunnel client (proxy/src/tunnel/connect.ts) against the real tunnel server
 * (tunnel/server.ts) on loopback, with certificates from the identity CA: TLS session
 * resumption on the second tunnel to the same endpoint and identity, the caller's verified
 * identity still known to the server on a resumed session, and no ticket offered where it
 * does not belong (another expected identity, a rotated client certificate).
 */
import tls from 'node:tls';
import type { SecureContext, TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newRoot } from '../../../injector/src/ca/root.js';
import type { IdentityMaterial } from '../../../proxy/src/identity/identity.js';
import { identityMaterial } from '../../helpers/workload-cert.js';
import { startLoopbackTunnel } from '../../helpers/tunnel-server.js';
import type { LoopbackTunnel } from '../../helpers/tunnel-server.js';
import { Registry } from '../../../proxy/src/metrics/registry.js';
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
