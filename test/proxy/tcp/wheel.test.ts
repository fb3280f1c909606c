/**
 * The one timer wheel of the data path (proxy/src/tcp/wheel.ts): the upstream client's connect
 * and idle timeouts and the server stage's head, keep-alive and close-grace timeouts.
 *
 * - On the real clock: order of expiry, cancel, re-arm, timeouts longer than one turn of the
 *   wheel, that it stops its interval when nothing is armed. No durations asserted, only order.
 * - On a fake clock (the clock is the edge; the tests' names say so): when timers fire in the
 *   wheel's time, the interval started and stopped, the tick hook.
 * - Real sockets through a real engine: an idle connection is closed on both sides, the client's
 *   by the server stage and the upstream one by the upstream client, both on this wheel.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ENV } from '../../../proxy/src/contract.js';
import { TimerWheel, WheelTimer } from '../../../proxy/src/tcp/wheel.js';
import type { WheelClock } from '../../../proxy/src/tcp/wheel.js';
import { startEngine, until } from '../harness.js';

class T extends WheelTimer {
  /** the wheel's time when it expired */
  at = -1;
  constructor(
    readonly name: string,
    private readonly log: string[],
    private readonly after?: () => void,
  ) {
    super();
  }
  expire(now: number): void {
    this.log.push(this.name);
    this.at = now;
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

/** A fake clock (an edge: the wheel's time and interval, stepped by the test). */
class FakeClock implements WheelClock {
  t = 1_000;
  fn: (() => void) | null = null;
  starts = 0;
  stops = 0;
  now(): number {
    return this.t;
  }
  every(_ms: number, fn: () => void): unknown {
    this.starts++;
    this.fn = fn;
    return fn;
  }
  stop(): void {
    this.stops++;
    this.fn = null;
  }
  /** Moves time on by `ms` in steps of `step`, running the interval at each step while it runs. */
  run(ms: number, step: number): void {
    for (let i = 0; i < ms; i += step) {
      this.t += step;
      this.fn?.();
    }
  }
}

describe('TimerWheel on a fake clock (the clock is the edge)', () => {
  it('fake clock: a timer fires within one tick after its time, never before', () => {
    const clock = new FakeClock();
    const w = new TimerWheel(100, 16, clock);
    const log: string[] = [];
    const t250 = new T('250', log);
    const t100 = new T('100', log);
    const t1000 = new T('1000', log);
    w.arm(t250, 250);
    w.arm(t100, 100);
    w.arm(t1000, 1000);
    clock.run(2_000, 100);
    expect(log).toEqual(['100', '250', '1000']);
    for (const [t, ms] of [
      [t100, 100],
      [t250, 250],
      [t1000, 1000],
    ] as const) {
      expect(t.at - 1_000).toBeGreaterThanOrEqual(ms);
      expect(t.at - 1_000).toBeLessThanOrEqual(ms + 100);
    }
  });

  it('fake clock: a timeout of many turns of the wheel is not fired a turn early', () => {
    const clock = new FakeClock();
    const w = new TimerWheel(10, 4, clock); // one turn: 40 ms
    const log: string[] = [];
    const t = new T('long', log);
    w.arm(t, 1_000);
    clock.run(990, 10);
    expect(log).toEqual([]);
    clock.run(30, 10);
    expect(log).toEqual(['long']);
    expect(t.at - 1_000).toBeGreaterThanOrEqual(1_000);
  });

  it('fake clock: the interval runs only while something is armed; the tick hook sees each tick', () => {
    const clock = new FakeClock();
    const ticks: number[] = [];
    const w = new TimerWheel(100, 8, clock, (now) => ticks.push(now));
    expect(w.running).toBe(false);
    const log: string[] = [];
    const a = new T('a', log);
    w.arm(a, 200);
    expect([w.running, clock.starts, ticks]).toEqual([true, 1, [1_000]]);
    w.arm(a, 300); // re-armed: still one interval
    expect(clock.starts).toBe(1);
    w.cancel(a);
    expect([w.running, clock.stops, w.size]).toEqual([false, 1, 0]);
    clock.run(500, 100);
    expect(log).toEqual([]);
    w.arm(a, 100);
    clock.run(300, 100);
    expect(log).toEqual(['a']);
    expect([w.running, clock.starts, clock.stops]).toEqual([false, 2, 2]);
    expect(ticks.length).toBeGreaterThan(1);
  });

  it('fake clock: a timer that re-arms itself in expire() (the server stage polling its deadlines) keeps firing', () => {
    const clock = new FakeClock();
    const w = new TimerWheel(100, 8, clock);
    let fired = 0;
    class Poll extends WheelTimer {
      expire(): void {
        if (++fired < 5) w.arm(this, 200);
      }
    }
    w.arm(new Poll(), 200);
    clock.run(5_000, 100);
    expect(fired).toBe(5);
    expect(w.running).toBe(false);
  });

  it('fake clock: remaining() is 0 within half a tick of the deadline, what is left before', () => {
    const w = new TimerWheel(100, 8, new FakeClock());
    expect(w.remaining(1_000, 500, 1_200)).toBe(300);
    expect(w.remaining(1_000, 500, 1_460)).toBe(0);
    expect(w.remaining(1_000, 500, 2_000)).toBe(0);
  });

  it('clear() disarms everything and stops the interval', () => {
    const clock = new FakeClock();
    const w = new TimerWheel(100, 8, clock);
    const log: string[] = [];
    for (let i = 0; i < 5; i++) w.arm(new T(`t${i}`, log), 100 * (i + 1));
    w.clear();
    expect([w.size, w.running]).toEqual([0, false]);
    clock.run(1_000, 100);
    expect(log).toEqual([]);
  });
});

describe('an idle connection is closed on both sides by the wheel (real sockets, a real engine)', () => {
  it('the client connection by the server stage (keep-alive timeout), the upstream one by the upstream client (its idle time)', async () => {
    // A raw backend that never closes an idle connection itself and announces no timeout: only
    // the engine's upstream client can close its side.
    const backendEnds: string[] = [];
    const backend = net.createServer((s) => {
      s.on('data', () => s.write('HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n'));
      s.on('end', () => {
        backendEnds.push('fin from the engine');
        s.end();
      });
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    const px = await startEngine({
      [ENV.logLevel]: 'silent',
      [ENV.httpServer]: 'codec',
      [ENV.inboundTarget]: `127.0.0.1:${(backend.address() as AddressInfo).port}`,
    });
    try {
      const c = net.connect(px.port('inbound'), '127.0.0.1');
      let text = '';
      let clientFin = false;
      let closed = false;
      c.on('data', (b: Buffer) => (text += b.toString('latin1')));
      c.on('end', () => (clientFin = true));
      c.on('close', () => (closed = true));
      c.on('error', () => undefined);
      c.write('GET /idle HTTP/1.1\r\nHost: a\r\n\r\n');
      await until(() => text.endsWith('ok\n'), 'the answer');
      expect(text).toMatch(/^HTTP\/1\.1 200 /);
      // Nothing more is sent either way: both idle timeouts run out (4 s upstream, 5 s here).
      await until(() => backendEnds.length === 1, 'the upstream idle close', 10_000);
      await until(() => closed, 'the client idle close', 10_000);
      expect(clientFin).toBe(true); // closed by the engine, not reset
      expect(text.match(/HTTP\/1\.1/g)?.length).toBe(1); // and without another answer
    } finally {
      await px.engine.close();
      await new Promise((r) => backend.close(r));
    }
  }, 20_000);
});
