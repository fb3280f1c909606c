/**
 * The one timer mechanism of the data path (issue 11 item 5): a coarse wheel, one interval for
 * every timeout of its users instead of a `setTimeout` per socket. Both sides use it: the
 * HTTP/1.1 server stage (head timeout, keep-alive idle timeout, close grace: http/h1server.ts)
 * and the upstream client (connect and idle timeouts: http1/connection.ts).
 *
 * A timer is an intrusive list node (the object that times out extends WheelTimer), so arming,
 * re-arming and cancelling allocate nothing; the interval runs only while something is armed,
 * and never keeps the process alive. A tick costs O(timers due in its slot), not O(timers).
 *
 * Precision is one tick: a timer fires between `ms` and `ms + tick` after it was armed. That is
 * what idle, head and connect timeouts need (seconds), not what a rate limit would. A user whose
 * deadline moves on every request (the server's idle time) need not re-arm per request: it keeps
 * one timer armed and, in expire(), re-arms itself for what is left (`remaining`).
 *
 * The clock is a parameter (STYLE §8): `systemClock` in production, a manual one in the tests.
 */
import { performance } from 'node:perf_hooks';

/** Where the wheel reads time and gets its interval from. */
export interface WheelClock {
  /** a monotonic time in ms */
  now(): number;
  /** Calls `fn` every `ms` until stopped; must not keep the process alive. */
  every(ms: number, fn: () => void): unknown;
  stop(handle: unknown): void;
}

/** performance.now() and an unref'd setInterval. */
export const systemClock: WheelClock = {
  now: () => performance.now(),
  every: (ms, fn) => {
    const t = setInterval(fn, ms);
    t.unref();
    return t;
  },
  stop: (handle) => clearInterval(handle as NodeJS.Timeout),
};

export abstract class WheelTimer {
  /** @internal */ wheelNext: WheelTimer | null = null;
  /** @internal */ wheelPrev: WheelTimer | null = null;
  /** @internal the slot it is linked in, -1 when not armed */
  wheelSlot = -1;
  /** @internal the wheel's clock (ms) at which it is due */
  wheelDue = 0;
  /** Called once when the timer is due (it is disarmed first). */
  abstract expire(now: number): void;
}

export class TimerWheel {
  private readonly slots: (WheelTimer | null)[];
  private cursor = 0;
  private armed = 0;
  private interval: unknown = undefined;
  private started = 0;
  private readonly turn = (): void => this.advance();
  /** the wheel's clock as of the last tick (or of an arm while it was stopped) */
  now: number;

  constructor(
    readonly tickMs: number,
    size = 64,
    readonly clock: WheelClock = systemClock,
    /** runs at every tick before anything expires (the server stage's Date text) */
    private readonly onTick?: (now: number) => void,
  ) {
    this.slots = new Array<WheelTimer | null>(size).fill(null);
    this.now = clock.now();
  }

  /** Timers armed (tests). */
  get size(): number {
    return this.armed;
  }

  /** How many times the interval was started (tests: a user that re-arms per request restarts it). */
  get starts(): number {
    return this.started;
  }

  /** Is the interval running (tests)? */
  get running(): boolean {
    return this.interval !== undefined;
  }

  /** Arms `t` to expire after `ms` (re-arms it if it was armed: it keeps the interval running). */
  arm(t: WheelTimer, ms: number): void {
    if (t.wheelSlot !== -1) this.unlink(t);
    if (this.interval === undefined) {
      this.now = this.clock.now();
      this.interval = this.clock.every(this.tickMs, this.turn);
      this.started++;
      this.onTick?.(this.now);
    }
    this.link(t, this.now + ms, ms);
  }

  /** Disarms `t` (a no-op when it is not armed). */
  cancel(t: WheelTimer): void {
    if (t.wheelSlot === -1) return;
    this.unlink(t);
    if (this.armed === 0) this.stop();
  }

  /** Disarms every timer and stops the interval (a server stage that closes). */
  clear(): void {
    for (let i = 0; i < this.slots.length; i++) {
      let t: WheelTimer | null;
      while ((t = this.slots[i] as WheelTimer | null) !== null) this.unlink(t);
    }
    this.stop();
  }

  /** Stops the interval (nothing is armed). */
  private stop(): void {
    if (this.interval === undefined) return;
    this.clock.stop(this.interval);
    this.interval = undefined;
  }

  private link(t: WheelTimer, due: number, ms: number): void {
    t.wheelDue = due;
    const ticks = Math.max(1, Math.ceil(ms / this.tickMs));
    const n = this.slots.length;
    const slot = (this.cursor + Math.min(ticks, n - 1)) % n;
    const head = this.slots[slot] as WheelTimer | null;
    t.wheelNext = head;
    t.wheelPrev = null;
    if (head !== null) head.wheelPrev = t;
    this.slots[slot] = t;
    t.wheelSlot = slot;
    this.armed++;
  }

  private unlink(t: WheelTimer): void {
    const next = t.wheelNext;
    const prev = t.wheelPrev;
    if (prev !== null) prev.wheelNext = next;
    else this.slots[t.wheelSlot] = next;
    if (next !== null) next.wheelPrev = prev;
    t.wheelNext = null;
    t.wheelPrev = null;
    t.wheelSlot = -1;
    this.armed--;
  }

  /** @internal one turn of the wheel: expire what is due in the next slot, re-link the rest */
  advance(): void {
    const now = (this.now = this.clock.now());
    this.onTick?.(now);
    const n = this.slots.length;
    this.cursor = (this.cursor + 1) % n;
    // Half a tick early is on time: the interval itself drifts by that much.
    const due = now + this.tickMs / 2;
    // Always the slot's head: each step takes it out of this slot (expired, or moved on), and an
    // expire() that cancels or arms other timers cannot leave this walk on a stale link.
    let t: WheelTimer | null;
    while ((t = this.slots[this.cursor] as WheelTimer | null) !== null) {
      const at = t.wheelDue;
      this.unlink(t);
      if (at <= due) {
        t.expire(now);
      } else {
        // Due after one more round (a timeout longer than the wheel): move it on.
        this.link(t, at, at - now);
      }
    }
    // Stopped only here and in cancel(): a timer re-armed in its expire() (or a re-arm) keeps
    // the interval instead of stopping and starting it.
    if (this.armed === 0) this.stop();
  }

  /** What is left of `ms` since `since` at the wheel's `now`, or 0 when it is due (within half a tick). */
  remaining(since: number, ms: number, now: number): number {
    const left = since + ms - now;
    return left <= this.tickMs / 2 ? 0 : left;
  }
}
