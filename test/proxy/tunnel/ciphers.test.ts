/**
 * The mesh tunnel's TLS parameters as negotiated on a real connection (tunnel/connect.ts against
 * tunnel/server.ts on loopback, certificates from the identity CA, both ends built from
 * tunnelContextOptions): TLS 1.3 with AES-256-GCM, chosen by the server's order even when the
 * client prefers another suite; ECDSA P-256 certificates; a client that offers none of the
 * tunnel's suites is refused and counted, and the server keeps serving.
 */
import tls from 'node:tls';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newRoot } from '../../../injector/src/ca/root.js';
import { tunnelContextOptions } from '../../../proxy/src/identity/identity.js';
import type { IdentityMaterial } from '../../../proxy/src/identity/identity.js';
import { identityMaterial } from '../../helpers/workload-cert.js';
import { startLoopbackTunnel } from '../../helpers/tunnel-server.js';
import type { LoopbackTunnel } from '../../helpers/tunnel-server.js';
import { TUNNEL_ALPN } from '../../../proxy/src/contract.js';
import { Registry } from '../../../proxy/src/metrics/registry.js';
import { connectTunnel } from '../../../proxy/src/tunnel/connect.js';

const TD = 'ciphers.test';
const ID_CLIENT = `spiffe://${TD}/ns/shop/sa/client`;
const ID_SERVER = `spiffe://${TD}/ns/shop/sa/web`;
const root = newRoot(TD);
/** OpenSSL's first TLS 1.3 suite, kept by measurement (docs/performance.md, "Mesh hop"). */
const FIRST_SUITE = 'TLS_AES_256_GCM_SHA384';

const material = (identity: string): IdentityMaterial => identityMaterial(root, identity);

const registry = new Registry();
let tunnel: LoopbackTunnel;
let port = 0;
/** the server side of each accepted tunnel */
const accepted: TLSSocket[] = [];

beforeAll(async () => {
  tunnel = await startLoopbackTunnel(material(ID_SERVER), registry, (s) => accepted.push(s as TLSSocket));
  port = tunnel.port;
});
afterAll(() => tunnel.close());

function failures(): string {
  return registry.render();
}

/** A tunnel through connectTunnel with `ctx`: the client's socket and the server's, both open. */
async function tunnelWith(ctx: tls.SecureContext): Promise<{ client: TLSSocket; server: TLSSocket }> {
  const before = accepted.length;
  const client = (await connectTunnel(
    { ip: '127.0.0.1', tunnelPort: port, targetPort: 8080, identity: ID_SERVER },
    ctx,
  )) as TLSSocket;
  return { client, server: accepted[before] as TLSSocket };
}

describe('mesh tunnel TLS parameters', () => {
  it('the tunnel client and server agree on TLS 1.3 with AES-256-GCM and ECDSA P-256 certificates', async () => {
    const { client, server } = await tunnelWith(
      tls.createSecureContext(tunnelContextOptions(material(ID_CLIENT))),
    );
    try {
      expect(client.getProtocol()).toBe('TLSv1.3');
      expect(client.getCipher().standardName).toBe(FIRST_SUITE);
      expect(server.getCipher().standardName).toBe(FIRST_SUITE);
      // ECDSA P-256 on both ends: the CA's leaves, what the handshake signs with.
      expect(client.getPeerCertificate().asn1Curve).toBe('prime256v1');
      expect(server.getPeerCertificate().asn1Curve).toBe('prime256v1');
    } finally {
      client.destroy();
    }
  });

  it("a client preferring ChaCha20-Poly1305 still gets the server's first choice", async () => {
    const { client, server } = await tunnelWith(
      tls.createSecureContext({
        ...tunnelContextOptions(material(ID_CLIENT)),
        ciphers: 'TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384',
      }),
    );
    try {
      expect(client.getCipher().standardName).toBe(FIRST_SUITE);
      expect(server.getCipher().standardName).toBe(FIRST_SUITE);
    } finally {
      client.destroy();
    }
  });

  it('a client offering none of the tunnel suites is refused and counted; the next tunnel works', async () => {
    const m = material(ID_CLIENT);
    const before = accepted.length;
    const refused = await new Promise<Error | undefined>((resolve) => {
      const s = tls.connect({
        host: '127.0.0.1',
        port,
        key: m.keyPem,
        cert: m.certPem,
        ca: m.trustBundle,
        minVersion: 'TLSv1.3',
        ciphers: 'TLS_AES_128_CCM_SHA256',
        ALPNProtocols: [TUNNEL_ALPN],
        checkServerIdentity: () => undefined,
      });
      s.once('secureConnect', () => {
        s.destroy();
        resolve(undefined);
      });
      s.once('error', (err) => resolve(err));
    });
    expect(refused).toBeInstanceOf(Error);
    expect(String((refused as Error & { code?: string }).code)).toMatch(/HANDSHAKE_FAILURE|ALERT/);
    expect(accepted.length).toBe(before);
    expect(failures()).toMatch(/remora_tls_handshake_failures_total\{[^}]*direction="inbound"[^}]*\} 1/);
    const { client } = await tunnelWith(tls.createSecureContext(tunnelContextOptions(m)));
    client.destroy();
    expect(accepted.length).toBe(before + 1);
  });
});
