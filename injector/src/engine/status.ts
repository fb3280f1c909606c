/**
 * In Kubernetes, what proxies report about their engines is recorded in the ConfigMap
 * `remora-engine-status` of the injector's namespace (key `<namespace>.<pod>`, a JSON value:
 * version, desired, state, detail, at, and what the injector verified of the caller: its
 * certificate's identity and its address), which `remora upgrade --version` reads. Writes are
 * batched (one read-modify-replace a second at most, on the resourceVersion read, so replicas
 * merge rather than overwrite) and the map is capped, the oldest reports dropped first. The
 * injector does not read or write pods: the CLI checks each report against the pod it names
 * (its IP and service account), so a proxy cannot speak for another pod.
 */
import type { CoreV1Api, V1ConfigMap } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { ENGINE_STATUS_CONFIGMAP } from '@remora/proxy/contract';
import type { StreamClient } from '../ca/ndjson.js';
import type { EngineReport } from './routes.js';

/** Reports kept (a ConfigMap holds at most 1 MiB; a report is ~250 bytes). */
export const MAX_REPORTS = 3000;
const FLUSH_MS = 1000;

export interface RecordedReport extends Omit<EngineReport, 'pod' | 'namespace'> {
  readonly identity: string;
  readonly ip: string;
}

export function statusKey(namespace: string, pod: string): string {
  return `${namespace}.${pod}`;
}

export class EngineStatusWriter {
  private readonly pending = new Map<string, RecordedReport>();
  private timer: NodeJS.Timeout | undefined;
  private flushing = false;

  constructor(
    private readonly core: CoreV1Api,
    private readonly namespace: string,
    private readonly logger: Logger,
    private readonly flushMs = FLUSH_MS,
  ) {}

  /** The route's onReport. */
  readonly record = (client: StreamClient, peer: string, r: EngineReport): void => {
    if (r.pod === null || r.namespace === null) return;
    const { pod: _p, namespace: _n, ...rest } = r;
    this.pending.set(statusKey(r.namespace, r.pod), {
      ...rest,
      identity: client.identity,
      ip: peer.replace(/^::ffff:/, ''),
    });
    this.schedule();
  };

  private schedule(): void {
    if (this.timer !== undefined || this.flushing) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.flushMs);
    this.timer.unref();
  }

  private async flush(): Promise<void> {
    if (this.pending.size === 0) return;
    this.flushing = true;
    const batch = new Map(this.pending);
    this.pending.clear();
    try {
      let cm: V1ConfigMap | undefined;
      try {
        cm = await this.core.readNamespacedConfigMap({
          namespace: this.namespace,
          name: ENGINE_STATUS_CONFIGMAP,
        });
      } catch (err) {
        if ((err as { code?: number }).code !== 404) throw err;
      }
      const data: Record<string, string> = { ...cm?.data };
      for (const [k, v] of batch) data[k] = JSON.stringify(v);
      const keys = Object.keys(data);
      if (keys.length > MAX_REPORTS) {
        const at = (k: string): string => {
          try {
            return String((JSON.parse(data[k] as string) as { at?: unknown }).at ?? '');
          } catch {
            return '';
          }
        };
        for (const k of keys.sort((a, b) => (at(a) < at(b) ? -1 : 1)).slice(0, keys.length - MAX_REPORTS))
          delete data[k];
      }
      if (cm === undefined)
        await this.core.createNamespacedConfigMap({
          namespace: this.namespace,
          body: {
            metadata: { name: ENGINE_STATUS_CONFIGMAP, labels: { 'app.kubernetes.io/part-of': 'remora' } },
            data,
          },
        });
      else
        await this.core.replaceNamespacedConfigMap({
          namespace: this.namespace,
          name: ENGINE_STATUS_CONFIGMAP,
          body: { ...cm, data },
        });
    } catch (err) {
      // a conflict (another replica wrote) or the API down: keep the batch for the next try
      for (const [k, v] of batch) if (!this.pending.has(k)) this.pending.set(k, v);
      this.logger.warn(
        { event: 'engine_status_unwritten', reports: batch.size, err },
        `cannot write ${ENGINE_STATUS_CONFIGMAP}: ${(err as Error).message}`,
      );
    } finally {
      this.flushing = false;
      if (this.pending.size > 0) this.schedule();
    }
  }

  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
  }
}
