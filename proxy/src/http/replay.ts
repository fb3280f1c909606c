/**
 * The request message of a gRPC call kept for a replay (docs/grpc.md "Retries"). The forwarder
 * hands the upstream this tee instead of the client's body when the route retries on gRPC
 * statuses: every chunk goes through to the first attempt as it arrives (no delay, the same
 * backpressure), and a copy is kept while the body stays within REPLAY_LIMIT bytes. A retry
 * can send the body again only when the client's body had ended (a unary call, or any call
 * whose request was small and complete) and nothing was dropped: `replayable`.
 *
 * A body larger than the limit keeps nothing (its copy is dropped at once), so a streaming
 * call costs no memory and is never replayed.
 */
import type { RequestBody } from './exchange.js';

/** Largest request body kept for a replay: 64 KiB (grpc-go's retry buffer default is 256 KiB per call). */
export const REPLAY_LIMIT = 64 * 1024;

type DataFn = (chunk: Buffer) => void;
type VoidFn = () => void;

/** The client's body, teed into a bounded copy. */
export class ReplayBody implements RequestBody {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  /** more than REPLAY_LIMIT bytes came: nothing is kept */
  overflow = false;
  /** the client's body ended (all of it passed through) */
  ended = false;
  /** an upstream attempt subscribed to the body (it may have read some) */
  started = false;
  private sink: DataFn | undefined = undefined;
  private endFns: VoidFn[] | undefined = undefined;

  constructor(
    private readonly source: RequestBody,
    private readonly limit = REPLAY_LIMIT,
  ) {}

  on(event: 'data', fn: (chunk: Buffer) => void): this;
  on(event: 'end' | 'close', fn: () => void): this;
  on(event: 'error', fn: (err: Error) => void): this;
  on(event: string, fn: (arg: never) => void): this {
    if (event === 'data') {
      this.started = true;
      this.sink = fn as DataFn;
      this.source.on('data', (chunk: Buffer) => {
        this.keep(chunk);
        (this.sink as DataFn)(chunk);
      });
    } else if (event === 'end') {
      if (this.endFns === undefined) {
        this.endFns = [];
        this.source.on('end', () => {
          this.ended = true;
          for (const f of this.endFns as VoidFn[]) f();
        });
      }
      this.endFns.push(fn as VoidFn);
    } else this.source.on(event as 'close', fn as VoidFn);
    return this;
  }

  private keep(chunk: Buffer): void {
    if (this.overflow) return;
    this.kept += chunk.length;
    if (this.kept > this.limit) {
      this.overflow = true;
      this.chunks.length = 0;
      return;
    }
    this.chunks.push(chunk);
  }

  /** Whether a retry can send the body: untouched, or kept whole. */
  get replayable(): boolean {
    if (!this.started) return !this.source.readableDidRead && !this.source.destroyed;
    return this.ended && !this.overflow;
  }

  /** The body for the next attempt: this tee while untouched, else a copy of what was kept. */
  next(): RequestBody {
    return this.started ? new KeptBody(this.chunks, this.kept, this.source) : this;
  }

  pause(): this {
    this.source.pause();
    return this;
  }
  resume(): this {
    this.source.resume();
    return this;
  }
  get readableDidRead(): boolean {
    return this.source.readableDidRead;
  }
  get destroyed(): boolean {
    return this.source.destroyed;
  }
  get bytesReceived(): number {
    return this.source.bytesReceived;
  }
  get deadline(): number | undefined {
    return this.source.deadline;
  }
}

/**
 * A kept body sent again: its chunks on `resume` (honouring `pause` between them), then
 * `end`. It reads nothing from the client (whose body is over); the client going away reaches
 * the upstream through the forwarder's client-gone path, not through this body.
 */
class KeptBody implements RequestBody {
  private i = 0;
  private paused = true;
  private readonly fns: { data?: DataFn; end?: VoidFn } = {};
  readableDidRead = false;

  constructor(
    private readonly chunks: readonly Buffer[],
    readonly bytesReceived: number,
    private readonly source: RequestBody,
  ) {}

  on(event: 'data', fn: (chunk: Buffer) => void): this;
  on(event: 'end' | 'close', fn: () => void): this;
  on(event: 'error', fn: (err: Error) => void): this;
  on(event: string, fn: (arg: never) => void): this {
    if (event === 'data') this.fns.data = fn as DataFn;
    else if (event === 'end') this.fns.end = fn as VoidFn;
    return this;
  }
  pause(): this {
    this.paused = true;
    return this;
  }
  resume(): this {
    if (!this.paused) return this;
    this.paused = false;
    const { data, end } = this.fns;
    while (!this.paused && this.i < this.chunks.length) {
      this.readableDidRead = true;
      data?.(this.chunks[this.i++] as Buffer);
    }
    if (!this.paused && this.i === this.chunks.length) {
      this.i++;
      end?.();
    }
    return this;
  }
  get destroyed(): boolean {
    return false;
  }
  get deadline(): number | undefined {
    return this.source.deadline;
  }
}
