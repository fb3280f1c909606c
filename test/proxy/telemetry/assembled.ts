/**
 * An engine assembled as in production (assemble.ts: metrics with this workload's labels, mesh,
 * policy, telemetry layers and the access log), on loopback ports, its JSON log lines captured.
 */
import { Writable } from 'node:stream';
import { assembleEngine } from '../../../proxy/src/assemble.js';
import type { Assembled } from '../../../proxy/src/assemble.js';
import { parseConfig } from '../../../proxy/src/config/config.js';
import { ENV } from '../../../proxy/src/contract.js';
import { createLogger } from '../../../proxy/src/log.js';
import { until } from '../harness.js';

export interface AssembledProxy {
  readonly a: Assembled;
  readonly logs: Record<string, unknown>[];
  port(name: 'inbound' | 'outbound' | 'tunnel' | 'metrics'): number;
  stop(): Promise<void>;
}

export async function startAssembled(name: string, env: Record<string, string>): Promise<AssembledProxy> {
  const config = parseConfig({
    [ENV.bindHost]: '127.0.0.1',
    [ENV.inboundPort]: '0',
    [ENV.outboundPort]: '0',
    [ENV.tunnelPort]: '0',
    [ENV.adminPort]: '0',
    [ENV.healthPort]: '0',
    [ENV.metricsPort]: '0',
    [ENV.logLevel]: 'info',
    [ENV.accessLog]: 'true',
    ...env,
  });
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      for (const l of chunk.toString().split('\n'))
        if (l) logs.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  const a = await assembleEngine(config, createLogger(config.logLevel, sink));
  await a.engine.start();
  await a.whenReady();
  await until(() => a.engine.ready, `${name} ready`, 10_000);
  return {
    a,
    logs,
    port: (n) => {
      const addr = a.engine.addresses()[n];
      if (!addr) throw new Error(`no ${n}`);
      return addr.port;
    },
    stop: async () => {
      await a.engine.close();
      await a.shutdown();
    },
  };
}
