#!/usr/bin/env node
/**
 * The demo's trace collector: a real OTLP/HTTP receiver (`demo/otlp.ts`) run as its own
 * process so it can sit in the client network namespace, where the proxy in the pod namespace
 * can reach it. Prints one JSON line per span received (nanosecond times as strings: JSON has
 * no bigint). Usage: node collector.js <host> <port>
 */
import { startOtlpReceiver } from './otlp.js';

const [host, portArg] = process.argv.slice(2);
const port = Number(portArg);
if (host === undefined || !Number.isInteger(port) || port < 0 || port > 65_535) {
  process.stderr.write('usage: collector <host> <port>\n');
  process.exit(2);
}

const receiver = await startOtlpReceiver({
  host,
  port,
  onSpans: (spans) => {
    for (const s of spans) {
      process.stdout.write(
        `${JSON.stringify(s, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}\n`,
      );
    }
  },
});
process.stdout.write(`${JSON.stringify({ listening: receiver.url })}\n`);
process.on('SIGTERM', () => void receiver.close().then(() => process.exit(0)));
