/**
 * The real tunnel server (proxy/src/tunnel/server.ts) on a loopback port, for tests of the tunnel
 * client and of what the two ends negotiate: every accepted, CONNECTed socket goes to `accept`
 * and is destroyed by `close`.
 */
import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import type { IdentityMaterial } from '../../proxy/src/identity/identity.js';
import { createLogger } from '../../proxy/src/log.js';
import type { Registry } from '../../proxy/src/metrics/registry.js';
import { MeshMetrics } from '../../proxy/src/tunnel/metrics.js';
import { createTunnelServer } from '../../proxy/src/tunnel/server.js';

export interface LoopbackTunnel {
  readonly port: number;
  close(): Promise<void>;
}

export async function startLoopbackTunnel(
  material: IdentityMaterial,
  registry: Registry,
  accept: (s: Socket) => void,
): Promise<LoopbackTunnel> {
  const open = new Set<Socket>();
  const tunnel = createTunnelServer({
    log: createLogger('silent'),
    metrics: new MeshMetrics(registry),
    accept: (s) => {
      open.add(s);
      s.on('close', () => open.delete(s));
      accept(s);
    },
  });
  tunnel.setIdentity(material);
  const tcp = net.createServer((raw) => tunnel.accept(raw));
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
  return {
    port: (tcp.address() as AddressInfo).port,
    close: async () => {
      for (const s of open) s.destroy();
      tunnel.close();
      await new Promise((r) => tcp.close(r));
    },
  };
}
