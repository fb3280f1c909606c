/**
 * What tracing costs: throughput and p99 through remora-proxy (inbound, explicit mode on
 * loopback, nginx backend) with tracing off, at 1 % and at 100 % sampling, exporting to a local
 * OTLP/HTTP receiver that accepts and drops. Rounds alternate between the variants so that
 * drift on a shared machine hits all three alike; the median of the rounds is reported.
 *
 *   npm run build && npx tsc -p bench && node bench/dist/tracing.js [--quick]
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ENV, METRICS, OTEL_ENV } from '@remora/proxy/contract';
import { compareVariants, log, metric } from './variants.js';

const quick = process.argv.includes('--quick');

/** An OTLP/HTTP endpoint that accepts every export and drops it, counting the bytes. */
async function startSink(): Promise<{ url: string; exports: () => number; close: () => Promise<void> }> {
  let exports = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      exports++;
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    exports: () => exports,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

async function main(): Promise<void> {
  const sink = await startSink();
  try {
    const common = { [OTEL_ENV.endpoint]: sink.url, [OTEL_ENV.bspScheduleDelay]: '1000' };
    const table = await compareVariants({
      what: 'tracing',
      variants: [
        { name: 'off', env: {} },
        { name: '1%', env: { ...common, [ENV.traceSampling]: '0.01' } },
        { name: '100%', env: { ...common, [ENV.traceSampling]: '1' } },
      ],
      rounds: quick ? 1 : 3,
      seconds: quick ? 3 : 10,
      warmupSeconds: quick ? 1 : 3,
      connections: 16,
      columns: {
        header: ['spans exported', 'spans dropped'],
        values: async (t) => {
          // Let the last batches go out before reading the span counters.
          await new Promise((r) => setTimeout(r, 1200));
          return [
            String(await metric(t.metrics, METRICS.traceSpansExported)),
            String(await metric(t.metrics, METRICS.traceSpansDropped)),
          ];
        },
      },
      note: 'OTLP receiver accepts and drops',
    });
    process.stdout.write(`${table}(${sink.exports()} exports received)\n`);
  } finally {
    await sink.close();
  }
}

main().catch((err: unknown) => {
  log(`bench/tracing: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
