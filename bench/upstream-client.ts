/**
 * What the upstream HTTP/1.1 client costs (docs/proxy.md, "Upstream client"): throughput,
 * p50/p99 and the proxy's CPU time per request through remora-proxy inbound → nginx with
 *   codec   the default client, proxy/src/http1/pool.ts (REMORA_UPSTREAM_CLIENT=codec)
 *   undici  the previous client (REMORA_UPSTREAM_CLIENT=undici)
 * Rounds alternate between the two, so a shared machine's drift hits both alike.
 *
 *   npm run build && npx tsc -p bench && node bench/dist/upstream-client.js [--quick]
 */
import { ENV } from '@remora/proxy/contract';
import { compareVariants, log } from './variants.js';

const quick = process.argv.includes('--quick');

async function main(): Promise<void> {
  const table = await compareVariants({
    what: 'upstream client',
    variants: [
      { name: 'undici', env: { [ENV.upstreamClient]: 'undici' } },
      { name: 'codec', env: { [ENV.upstreamClient]: 'codec' } },
    ],
    rounds: quick ? 1 : 5,
    seconds: quick ? 3 : 10,
    warmupSeconds: quick ? 1 : 3,
    connections: 32,
    note: 'nginx answers 12 bytes; keep-alive on both sides',
  });
  process.stdout.write(table);
}

main().catch((err: unknown) => {
  log(`bench/upstream-client: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
