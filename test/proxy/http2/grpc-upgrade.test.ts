/**
 * An in-place engine upgrade under gRPC load (issue 12 item 1): the real supervisor and engine
 * (explicit mode, loopback) in front of a grpc-js server; one grpc-js channel keeps unary calls
 * and long-lived bidi streams going while the supervisor upgrades the engine three times. The
 * old engine sends GOAWAY and finishes its streams; the client opens its next connection to the
 * new engine. Zero failed calls, every stream complete.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../../proxy/src/contract.js';
import { config, metric, startSupervisor, upgrade } from '../supervisor/helpers.js';
import type { RunningSupervisor } from '../supervisor/helpers.js';
import { grpc, grpcClient, startGrpcServer, unary } from '../../helpers/grpc.js';
import type { Echo, GrpcPeer } from '../../helpers/grpc.js';

const ENGINE = fileURLToPath(new URL('../../../proxy/dist/engine-child.js', import.meta.url));

let peer: GrpcPeer;
let sup: RunningSupervisor;
let client: Echo;

beforeAll(async () => {
  peer = await startGrpcServer();
  sup = await startSupervisor({
    engine: ENGINE,
    env: { [ENV.inboundTarget]: `127.0.0.1:${peer.port}`, [ENV.accessLog]: 'off', [ENV.drainSeconds]: '15' },
  });
  client = grpcClient(sup.ports.inbound);
}, 30_000);

afterAll(async () => {
  client?.close();
  await sup?.stop();
  await peer?.close();
});

/** A bidi stream that pings every 20 ms for `ms`, then ends; resolves with its status code and replies. */
function longStream(ms: number): Promise<{ code: number; sent: number; back: number }> {
  return new Promise((resolve) => {
    const call = client.chat(new grpc.Metadata(), {});
    let sent = 0;
    let back = 0;
    call.on('data', () => back++);
    call.on('error', () => undefined);
    const t = setInterval(() => {
      call.write(Buffer.from(`m${sent++}`));
    }, 20);
    setTimeout(() => {
      clearInterval(t);
      call.end();
    }, ms);
    call.on('status', (s: grpc.StatusObject) => resolve({ code: s.code, sent, back }));
  });
}

describe('engine upgrade under gRPC load', () => {
  it('three upgrades: zero failed unary calls, every long-lived stream completes', async () => {
    expect((await unary(client, 'warm')).err).toBeNull();
    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    const unaryLoop = async (): Promise<void> => {
      while (!stop) {
        const r = await unary(client, 'x');
        if (r.err === null) ok++;
        else failures.push(`${r.err.code} ${r.err.details}`);
      }
    };
    const streams: Promise<{ code: number; sent: number; back: number }>[] = [];
    const streamLoop = async (): Promise<void> => {
      while (!stop) {
        const s = longStream(1500);
        streams.push(s);
        await s;
      }
    };
    const loops = [unaryLoop(), unaryLoop(), streamLoop(), streamLoop()];
    const results: boolean[] = [];
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 700));
      const r = await upgrade(sup);
      results.push((JSON.parse(r.body) as { ok: boolean }).ok);
    }
    await new Promise((r) => setTimeout(r, 700));
    stop = true;
    await Promise.all(loops);
    const done = await Promise.all(streams);
    expect(results).toEqual([true, true, true]);
    expect((await config(sup)).generation).toBe(4);
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(50);
    expect(done.filter((s) => s.code !== grpc.status.OK)).toEqual([]);
    // Every message of every stream came back (none lost across a GOAWAY).
    expect(done.every((s) => s.back === s.sent)).toBe(true);
    expect(done.length).toBeGreaterThanOrEqual(4);
    // The one channel moved engine to engine: a new HTTP/2 connection after each GOAWAY.
    expect(
      await metric(sup, 'remora_tcp_connections_opened_total', { direction: 'inbound', protocol: 'http2' }),
    ).toBeGreaterThanOrEqual(4);
  }, 120_000);
});
