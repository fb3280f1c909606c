/**
 * What the sidecar itself costs, per process (`process="supervisor"|"engine"`), in the names of
 * prom-client's default set so existing dashboards read them: CPU seconds, resident memory, open
 * and maximum file descriptors, start time, V8 heap, event-loop delay, plus the proportional set
 * size (PSS, DESIGN §7: what the container's memory accounting is close to; RSS counts the
 * shared Node binary once per process). Everything is read when the registry is collected (a
 * scrape, an engine heartbeat), nothing on the data path. Not prom-client itself: its registry
 * cannot be snapshotted over IPC and merged across engine generations the way ours is
 * (registry.ts), and these dozen gauges are a few reads of /proc and process.*.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Registry } from './registry.js';

export type ProcessRole = 'supervisor' | 'engine';

/** Metric names (prom-client's where it has one). */
export const PROCESS_METRICS = Object.freeze({
  cpuUser: 'process_cpu_user_seconds_total',
  cpuSystem: 'process_cpu_system_seconds_total',
  cpu: 'process_cpu_seconds_total',
  resident: 'process_resident_memory_bytes',
  pss: 'remora_process_pss_bytes',
  openFds: 'process_open_fds',
  maxFds: 'process_max_fds',
  startTime: 'process_start_time_seconds',
  heapUsed: 'nodejs_heap_size_used_bytes',
  heapTotal: 'nodejs_heap_size_total_bytes',
  external: 'nodejs_external_memory_bytes',
  lagP50: 'nodejs_eventloop_lag_p50_seconds',
  lagP99: 'nodejs_eventloop_lag_p99_seconds',
  lagMax: 'nodejs_eventloop_lag_max_seconds',
  activeResources: 'nodejs_active_resources_total',
});

/**
 * The event-loop sampling interval per role: delays are reported beyond it. Every sample is a
 * timer wakeup: 100 a second at 10 ms, which was most of an idle supervisor's CPU (~3 ms/s,
 * docs/performance.md, "A light heartbeat") and more than half of an idle engine's (9.5 of
 * ~10 ms/s; 4 ms/s at 50 ms, "An idle engine's wakeups"). The supervisor, idle but for probes
 * and heartbeats, samples every 100 ms, the engine every 50 ms. The cost of a coarser interval:
 * a stall is seen only when a sample falls due during it, so stalls much shorter than the
 * interval show in fewer samples (a 5 ms stall in one of ten at 50 ms); every stall longer than
 * the interval is still measured to the microsecond.
 */
const LAG_RESOLUTION_MS: Readonly<Record<ProcessRole, number>> = { engine: 50, supervisor: 100 };
/** The event-loop percentiles describe windows of this length (about a scrape interval). */
const LAG_WINDOW_MS = 15_000;
/** How often the /proc files behind PSS, open fds and the fd limit are read (a scrape interval). */
const PROC_READ_MS = 5_000;

/** Seconds a timer ran late, from a recorded interval in nanoseconds. */
function lateBy(ns: number, resolutionMs: number): number {
  return Math.max(0, Math.round(ns / 1e3 - resolutionMs * 1e3) / 1e6);
}

/** `Pss:` of /proc/self/smaps_rollup in bytes; undefined where the kernel has no such file. */
export function readPss(text: string): number | undefined {
  const m = /^Pss:\s+(\d+) kB$/m.exec(text);
  return m === null ? undefined : Number(m[1]) * 1024;
}

/** The soft limit of `Max open files` in /proc/self/limits. */
export function readMaxFds(text: string): number | undefined {
  const m = /^Max open files\s+(\d+|unlimited)\s+/m.exec(text);
  return m === null || m[1] === 'unlimited' ? undefined : Number(m[1]);
}

function tryRead(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * Registers the process series for `role`. The event-loop percentiles describe the last full
 * 15 s window (the first one: so far) and, unlike prom-client's, do not include the sampling
 * interval (LAG_RESOLUTION_MS): 0 is a loop that was never late.
 */
export function registerProcessMetrics(registry: Registry, role: ProcessRole): void {
  const n = PROCESS_METRICS;
  const L = ['process'];
  const g = (name: string, help: string) => registry.gauge(name, help, L).child(role);
  const c = (name: string, help: string) => registry.counter(name, help, L).child(role);
  const user = c(n.cpuUser, 'User CPU time spent, in seconds.');
  const system = c(n.cpuSystem, 'System CPU time spent, in seconds.');
  const cpu = c(n.cpu, 'User and system CPU time spent, in seconds.');
  const resident = g(n.resident, 'Resident memory size, in bytes.');
  const pss = g(n.pss, 'Proportional set size (shared pages divided among their users), in bytes.');
  const openFds = g(n.openFds, 'Open file descriptors.');
  const maxFds = g(n.maxFds, 'Maximum number of open file descriptors.');
  const start = g(n.startTime, 'Start time of the process since the Unix epoch, in seconds.');
  const heapUsed = g(n.heapUsed, 'V8 heap used, in bytes.');
  const heapTotal = g(n.heapTotal, 'V8 heap size, in bytes.');
  const external = g(n.external, 'Memory of C++ objects bound to JavaScript objects, in bytes.');
  const p50 = g(n.lagP50, 'Event-loop delay, median over the last 15 s window, in seconds.');
  const p99 = g(n.lagP99, 'Event-loop delay, 99th percentile over the last 15 s window, in seconds.');
  const max = g(n.lagMax, 'Event-loop delay, maximum over the last 15 s window, in seconds.');
  const resources = g(n.activeResources, 'Active handles and requests keeping the event loop alive.');
  start.set(Math.round((Date.now() - performance.now()) / 10) / 100);
  const resolution = LAG_RESOLUTION_MS[role];
  const delay = monitorEventLoopDelay({ resolution });
  delay.enable();
  let windowStart = performance.now();
  let procReadAt = -1;
  let first = true;
  registry.onCollect(() => {
    const u = process.cpuUsage();
    user.value = u.user / 1e6;
    system.value = u.system / 1e6;
    cpu.value = (u.user + u.system) / 1e6;
    const mem = process.memoryUsage();
    resident.set(mem.rss);
    heapUsed.set(mem.heapUsed);
    heapTotal.set(mem.heapTotal);
    external.set(mem.external);
    resources.set(process.getActiveResourcesInfo().length);
    const now = performance.now();
    // The /proc reads cost 2-3 ms in a busy engine (smaps_rollup walks every mapping), and the
    // engine is collected every heartbeat (1 s): read them at most every PROC_READ_MS.
    if (now - procReadAt >= PROC_READ_MS || procReadAt < 0) {
      procReadAt = now;
      const rollup = tryRead('/proc/self/smaps_rollup');
      const p = rollup === undefined ? undefined : readPss(rollup);
      if (p !== undefined) pss.set(p);
      try {
        // The directory's own descriptor is open while it is listed.
        openFds.set(readdirSync('/proc/self/fd').length - 1);
      } catch {
        // not Linux: left at 0
      }
      const limits = tryRead('/proc/self/limits');
      const lim = limits === undefined ? undefined : readMaxFds(limits);
      if (lim !== undefined) maxFds.set(lim);
    }
    // Percentiles of the last full window (the first window: so far), not of the time since the
    // previous collection: the engine is collected every heartbeat (1 s), far more often than a
    // scrape, and a spike between two scrapes must still show.
    const ended = now - windowStart >= LAG_WINDOW_MS;
    if ((ended || first) && delay.count > 0) {
      // The histogram records the time between its timer's runs, the interval included.
      p50.set(lateBy(delay.percentile(50), resolution));
      p99.set(lateBy(delay.percentile(99), resolution));
      max.set(lateBy(delay.max, resolution));
    }
    if (ended) {
      first = false;
      delay.reset();
      windowStart = now;
    }
  });
}
