/**
 * The coarse timer wheel (proxy/src/tcp/wheel.ts) that the upstream client's connect and idle
 * timeouts share: order of expiry, cancel, re-arm, timeouts longer than one turn of the wheel,
 * and that it stops its interval when nothing is armed. No durations are asserted, only order.
 */
import { describe, expect, it } from 'vitest';
import { TimerWheel, WheelTimer } from '../../../proxy/src/tcp/wheel.js';

class T extends WheelTimer {
  constructor(
    readonly name: string,
    private readonly log: string[],
    private readonly after?: () => void,
  ) {
    super();
  }
  expire(): void {
    this.log.push(this.name);
    this.after?.();
  }
}

function settled(w: TimerWheel): Promise<void> {
  return new Promise((resolve) => {
    const check = (): void => (w.size === 0 ? resolve() : void setTimeout(check, 5));
    check();
  });
}

describe('TimerWheel', () => {
  it('expires timers in the order they are due; a cancelled one never fires; re-arming postpones', async () => {
    const w = new TimerWheel(10, 8);
    const log: string[] = [];
    const a = new T('a', log);
    const b = new T('b', log);
    const c = new T('c', log);
    const d = new T('d', log);
    w.arm(c, 60);
    w.arm(a, 10);
    w.arm(b, 30);
    w.arm(d, 20);
    w.cancel(d);
    w.arm(a, 45); // re-armed: now after b, before c
    expect(w.size).toBe(3);
    await settled(w);
    expect(log).toEqual(['b', 'a', 'c']);
  });

  it('a timeout longer than one turn of the wheel fires after the shorter ones armed with it', async () => {
    const w = new TimerWheel(10, 4); // one turn: 40 ms
    const log: string[] = [];
    w.arm(new T('long', log), 130);
    w.arm(new T('short', log), 20);
    w.arm(new T('mid', log), 60);
    await settled(w);
    expect(log).toEqual(['short', 'mid', 'long']);
  });

  it('a timer that cancels another in the same slot as it expires leaves the wheel consistent', async () => {
    const w = new TimerWheel(10, 8);
    const log: string[] = [];
    const victim = new T('victim', log);
    const killer = new T('killer', log, () => w.cancel(victim));
    w.arm(victim, 20);
    w.arm(killer, 20);
    await settled(w);
    expect(log).toEqual(['killer']);
    expect(w.size).toBe(0);
    // and it starts again when something is armed later
    w.arm(new T('later', log), 10);
    await settled(w);
    expect(log).toEqual(['killer', 'later']);
  });
});
