/**
 * Fresh engine numbers for a scrape without an IPC flood (docs/supervisor.md, metrics
 * continuity): one snapshot round at a time (concurrent scrapes share it), none within
 * SNAPSHOT_MIN_AGE_MS of the last one's start, each bounded by SNAPSHOT_WAIT_MS.
 */
import type { EngineProcess } from './engine-process.js';

/** A scrape waits at most this long for engines' fresh snapshots, then uses the last ones. */
const SNAPSHOT_WAIT_MS = 250;
/**
 * A scrape within this long of the last snapshot round's start renders what the ledger holds
 * (that round's numbers, or a newer heartbeat's) instead of asking the engines again: a scrape
 * loop costs the engines at most one snapshot per this period beyond their heartbeats.
 */
const SNAPSHOT_MIN_AGE_MS = 500;

export class SnapshotRounds {
  /** the round in flight, shared by every scrape that arrives meanwhile */
  private round: Promise<void> | undefined;
  private lastRoundAt = 0;

  /** `sent(n)`: n snapshot requests went out (counted in a metric). */
  constructor(private readonly sent: (n: number) => void) {}

  fresh(all: readonly EngineProcess[]): Promise<void> {
    if (this.round !== undefined) return this.round;
    if (Date.now() - this.lastRoundAt < SNAPSHOT_MIN_AGE_MS) return Promise.resolve();
    const engines = all.filter((e) => e.state === 'ready' || e.state === 'draining');
    if (engines.length === 0) return Promise.resolve();
    this.sent(engines.length);
    this.lastRoundAt = Date.now();
    const round = Promise.all(engines.map((e) => e.freshSnapshot(SNAPSHOT_WAIT_MS))).then(() => {
      this.round = undefined;
    });
    this.round = round;
    return round;
  }
}
