/**
 * One coarse ticker per server stage instead of a timer per socket (issue 11 §5): every `tickMs`
 * it hands the time to each member (a connection checks its own head, keep-alive and close
 * deadlines against it). A connection costs one Set entry and a few numbers, no timer object and
 * no re-arm per request. Each tick scans the members, O(connections); deadlines are met within
 * one tick. It also keeps the Date header's text, rebuilt once a tick, not once per response.
 * unref'd: it never keeps the process alive.
 */
import { performance } from 'node:perf_hooks';

export interface Ticked {
  tick(now: number): void;
}

export class Ticker {
  /** `Date` header value, at most one tick old */
  date = new Date().toUTCString();
  private timer: NodeJS.Timeout | undefined = undefined;
  private readonly members = new Set<Ticked>();

  constructor(readonly tickMs: number) {}

  add(m: Ticked): void {
    this.members.add(m);
    if (this.timer === undefined) {
      this.date = new Date().toUTCString();
      this.timer = setInterval(onTick, this.tickMs, this);
      this.timer.unref();
    }
  }

  delete(m: Ticked): void {
    this.members.delete(m);
    if (this.members.size === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** One tick now (also what the interval runs). */
  tick(): void {
    this.date = new Date().toUTCString();
    const now = performance.now();
    for (const m of this.members) m.tick(now);
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.members.clear();
  }
}

function onTick(t: Ticker): void {
  t.tick();
}
