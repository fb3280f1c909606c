/**
 * Traffic and observation helpers on top of the harness: one-shot HTTP and TCP clients run
 * inside a pod (as any identity), port waits, the proxy's metrics, iptables state.
 */
import type { Harness, Identity, Pod } from './harness.js';

export type ClientResult<T> = ({ ok: true } & T) | { ok: false; error: string };

function result<T>(answer: Record<string, unknown>): ClientResult<T> {
  const { id: _id, error, ...rest } = answer;
  return typeof error === 'string' ? { ok: false, error } : ({ ok: true, ...rest } as { ok: true } & T);
}

/** One HTTP request (new connection, no keep-alive) from inside `pod`, as `as` (root when absent). */
export async function httpRequest(
  h: Harness,
  pod: Pod,
  url: string,
  opts: { as?: Identity; method?: string } = {},
): Promise<ClientResult<{ status: number; body: string }>> {
  return result(await h.agentRequest(pod, { op: 'http', url, method: opts.method ?? 'GET' }, opts.as));
}

/** HTTP GET whose body is JSON; throws with the client's error when the request failed. */
export async function httpJson<T>(h: Harness, pod: Pod, url: string, as?: Identity): Promise<T> {
  const r = await httpRequest(h, pod, url, { as });
  if (!r.ok) throw new Error(`GET ${url} from ${pod.name}: ${r.error}`);
  return JSON.parse(r.body) as T;
}

/** One TCP exchange from inside `pod`: write `payload`, half-close, read until the peer closes. */
export async function tcpExchange(
  h: Harness,
  pod: Pod,
  host: string,
  port: number,
  payload: string,
  as?: Identity,
): Promise<ClientResult<{ data: string }>> {
  return result(await h.agentRequest(pod, { op: 'tcp', host, port, payload }, as));
}

/** Polls `probe` until it returns a value `done` accepts; throws with the last value after `timeoutMs`. */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T>,
  done: (v: T) => boolean,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  let lastErr: unknown;
  for (;;) {
    try {
      last = await probe();
      if (done(last)) return last;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${what}: not reached in ${timeoutMs} ms; last: ${JSON.stringify(last)} ${String(lastErr ?? '')}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits until something listens on TCP `port` inside the pod (ss, no connection made). */
export async function waitForPort(h: Harness, pod: Pod, port: number, timeoutMs = 10_000): Promise<void> {
  await eventually(
    `port ${port} listening in ${pod.name}`,
    async () => (await h.exec(pod, 'ss', ['-Hltn', `sport = :${port}`])).stdout,
    (out) => out.trim() !== '',
    timeoutMs,
  );
}

/** One sample of Prometheus text: name, labels and value. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Parses Prometheus text exposition format (the subset the proxy writes). */
export function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  const lineRe = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
  const labelRe = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const m = lineRe.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(labelRe)) labels[l[1] ?? ''] = l[2] ?? '';
    samples.push({ name: m[1] ?? '', labels, value: Number(m[3]) });
  }
  return samples;
}

/** Sum of every sample of `name` whose labels include `match`. */
export function sumMetric(
  samples: readonly Sample[],
  name: string,
  match: Record<string, string> = {},
): number {
  return samples
    .filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((acc, s) => acc + s.value, 0);
}

/** The pod's proxy metrics, read over its loopback (never captured). */
export async function readMetrics(h: Harness, pod: Pod, port: number): Promise<Sample[]> {
  const r = await httpRequest(h, pod, `http://127.0.0.1:${port}/metrics`);
  if (!r.ok) throw new Error(`metrics of ${pod.name}: ${r.error}`);
  if (r.status !== 200) throw new Error(`metrics of ${pod.name}: HTTP ${r.status}`);
  return parsePrometheus(r.body);
}

/**
 * `iptables-save` (or another *-save tool) of the pod's nat table, without the timestamp comments
 * and with chain counters zeroed (legacy counts packets even in policy lines): the rules only.
 */
export async function natTable(h: Harness, pod: Pod, tool = 'iptables-save'): Promise<string> {
  const r = await h.exec(pod, tool, ['-t', 'nat']);
  if (r.code !== 0) throw new Error(`${tool} in ${pod.name}: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .map((l) => (l.startsWith(':') ? l.replace(/\[\d+:\d+\]$/, '[0:0]') : l))
    .join('\n');
}
