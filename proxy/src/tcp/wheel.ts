/**
 * A coarse timer wheel (issue 11 item 5): one interval for every timeout of one kind instead
 * of a `setTimeout` per socket. A timer is an intrusive list node (the object that times out
 * extends WheelTimer), so arming, re-arming and cancelling allocate nothing; the interval runs
 * only while something is armed, and never keeps the process alive.
 *
 * Precision is one tick: a timer fires between `ms` and `ms + tick` after it was armed. That is
 * what idle and connect timeouts need (seconds), not what a rate limit would.
 *
 * The server side (codec-server's branch) may bring its own wheel; at merge one is kept.
 */

export abstract class WheelTimer {
  /** @internal */ wheelNext: WheelTimer | null = null;
  /** @internal */ wheelPrev: WheelTimer | null = null;
  /** @internal the slot it is linked in, -1 when not armed */
  wheelSlot = -1;
  /** @internal the wheel's clock (ms) at which it is due */
  wheelDue = 0;
  /** Called once when the timer is due (it is disarmed first). */
  abstract expire(): void;
}

export class TimerWheel {
  private readonly slots: (WheelTimer | null)[];
  private cursor = 0;
  private armed = 0;
  private interval: NodeJS.Timeout | undefined = undefined;
  /** the wheel's clock: Date.now() as of the last tick (or arm while stopped) */
  now = Date.now();

  constructor(
    readonly tickMs: number,
    size = 64,
  ) {
    this.slots = new Array<WheelTimer | null>(size).fill(null);
  }

  /** Timers armed (tests). */
  get size(): number {
    return this.armed;
  }

  /** Arms `t` to expire after `ms` (re-arms it if it was armed). */
  arm(t: WheelTimer, ms: number): void {
    if (t.wheelSlot !== -1) this.unlink(t);
    if (this.interval === undefined) {
      this.now = Date.now();
      this.interval = setInterval(tick, this.tickMs, this);
      this.interval.unref();
    }
    t.wheelDue = this.now + ms;
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

  /** Disarms `t` (a no-op when it is not armed). */
  cancel(t: WheelTimer): void {
    if (t.wheelSlot !== -1) this.unlink(t);
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
    if (this.armed === 0 && this.interval !== undefined) {
      clearInterval(this.interval);
      this.interval = undefined;
    }
  }

  /** @internal one turn of the wheel: expire what is due in the next slot, re-link the rest */
  advance(): void {
    this.now = Date.now();
    const n = this.slots.length;
    this.cursor = (this.cursor + 1) % n;
    // Half a tick early is on time: the interval itself drifts by that much.
    const due = this.now + this.tickMs / 2;
    // Always the slot's head: each step takes it out of this slot (expired, or moved on), and an
    // expire() that cancels or arms other timers cannot leave this walk on a stale link.
    let t: WheelTimer | null;
    while ((t = this.slots[this.cursor] as WheelTimer | null) !== null) {
      const at = t.wheelDue;
      this.unlink(t);
      if (at <= due) {
        t.expire();
      } else {
        // Due after one more round (a timeout longer than the wheel): move it on.
        this.arm(t, at - this.now);
        t.wheelDue = at;
      }
    }
  }
}

function tick(w: TimerWheel): void {
  w.advance();
}
