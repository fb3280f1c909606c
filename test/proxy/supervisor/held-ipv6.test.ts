// The IPv6 twins of the capture listeners and of the mesh tunnel: held on the same port as the
// IPv4 listener (which only works with ipv6Only), and standing in with the IPv4 listener's
// explicit-mode target (the tunnel's twin, like the tunnel, is only ever reset).
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ENV, PORTS } from '../../../proxy/src/contract.js';
import { inboundDelivery } from '../../../proxy/src/inbound/target.js';
import { parseSupervisorConfig } from '../../../proxy/src/supervisor/config.js';
import { createSupervisorLogger } from '../../../proxy/src/supervisor/log.js';
import { acceptOn, holdListener, releaseListener } from '../../../proxy/src/supervisor/held.js';
import type { HeldListener } from '../../../proxy/src/supervisor/held.js';
import type { ListenerName } from '../../../proxy/src/supervisor/ipc.js';
import { supervisorOptions } from '../../../proxy/src/supervisor/main.js';
import { StandIn, ipv4Name, relayTarget } from '../../../proxy/src/supervisor/standin.js';

const held: HeldListener[] = [];
const servers: net.Server[] = [];

afterEach(() => {
  for (const s of servers.splice(0)) s.close();
  for (const l of held.splice(0)) releaseListener(l);
});

describe('IPv6 twins of the capture listeners', () => {
  it('[::] is held on the same port as 0.0.0.0 without clashing, and accepts IPv6 only', async () => {
    const v4 = await holdListener('inbound', '0.0.0.0', 0, 16);
    held.push(v4);
    const v6 = await holdListener('inbound6', '::', v4.port, 16);
    held.push(v6);
    expect(v6.port).toBe(v4.port);
    // Accept on a copy of the IPv6 socket (as an engine does): an IPv6 client lands there.
    const accepted = new Promise<string>((resolve) => {
      servers.push(
        acceptOn(v6, 16, (c) => {
          resolve(c.localAddress ?? '');
          c.destroy();
        }),
      );
    });
    const client = net.connect({ host: '::1', port: v6.port });
    client.on('error', () => undefined);
    expect(await accepted).toBe('::1');
    client.destroy();
  });

  it('an address that is not there is an error for the caller (the supervisor skips optional twins)', async () => {
    // 100::/64 is the discard-only prefix (RFC 6666): never a local address.
    await expect(holdListener('outbound6', '100::1', 0, 16)).rejects.toThrow(/EADDRNOTAVAIL/);
  });

  it('a twin not redirected goes to its IPv4 listener’s explicit target', async () => {
    expect(ipv4Name('inbound6')).toBe('inbound');
    expect(ipv4Name('outbound6')).toBe('outbound');
    expect(ipv4Name('tunnel')).toBe('tunnel');
    expect(ipv4Name('tunnel6')).toBe('tunnel');
    const server = net.createServer();
    servers.push(server);
    await new Promise<void>((resolve) => server.listen({ host: '::1', port: 0 }, resolve));
    const port = (server.address() as net.AddressInfo).port;
    const socket = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    const client = net.connect({ host: '::1', port });
    const s = await socket;
    const target = { host: '127.0.0.1', port: 8080 };
    const delivery = inboundDelivery(undefined, []);
    expect(relayTarget('inbound6', s, { inbound: target }, delivery)).toEqual(target);
    expect(relayTarget('outbound6', s, { inbound: target }, delivery)).toBeUndefined();
    client.destroy();
    s.destroy();
  });

  it('with mTLS on, the tunnel gets its twin [::]:15008 (optional); an explicit bind host or no CA, none', () => {
    const mtls = { [ENV.caAddress]: '127.0.0.1:15012', [ENV.caBundleFile]: '/b.pem', [ENV.tokenFile]: '/t' };
    const names = (env: Record<string, string>) =>
      supervisorOptions(parseSupervisorConfig(env), env, undefined, '/engine.js').listeners.filter((l) =>
        l.name.startsWith('tunnel'),
      );
    expect(names(mtls)).toEqual([
      { name: 'tunnel', host: '0.0.0.0', port: PORTS.tunnel },
      { name: 'tunnel6', host: '::', port: PORTS.tunnel, optional: true },
    ]);
    expect(names({ ...mtls, [ENV.bindHost]: '127.0.0.1' }).map((l) => [l.name, l.host])).toEqual([
      ['tunnel', '127.0.0.1'],
      ['tunnel6', '::1'],
    ]);
    expect(names({ ...mtls, [ENV.bindHost]: '10.1.0.3' }).map((l) => l.name)).toEqual(['tunnel']);
    expect(names({})).toEqual([]);
  });

  it('while no engine runs, the tunnel6 stand-in resets (only an engine terminates mTLS), even in degrade', async () => {
    const v4 = await holdListener('tunnel', '127.0.0.1', 0, 16);
    held.push(v4);
    const v6 = await holdListener('tunnel6', '::1', v4.port, 16);
    held.push(v6);
    const resets: ListenerName[] = [];
    const relayed: ListenerName[] = [];
    const standIn = new StandIn(
      [v4, v6],
      { tunnel: { host: '127.0.0.1', port: 1 } },
      inboundDelivery(undefined, []),
      () => undefined,
      16,
      { relayed: (n) => relayed.push(n), reset: (n) => resets.push(n) },
      createSupervisorLogger('silent', {}, () => undefined),
    );
    standIn.start('relay');
    try {
      const outcome = await new Promise<string>((resolve) => {
        const c = net.connect({ host: '::1', port: v6.port });
        c.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
        c.on('close', () => resolve('closed'));
      });
      expect(outcome).toBe('ECONNRESET');
      expect(resets).toEqual(['tunnel6']);
      expect(relayed).toEqual([]);
    } finally {
      standIn.destroyAll();
    }
  });
});
