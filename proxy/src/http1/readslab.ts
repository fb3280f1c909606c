/**
 * Socket reads without the Readable stream machinery: net's documented `onread` option
 * (`{ buffer: () => Buffer, callback(nread, buf) }`) reads straight into a buffer we hand out
 * and calls us with the byte count, instead of `onStreamRead` → `Readable.push` → `emit('data')`,
 * `maybeReadMore`'s nextTick and a new ArrayBuffer per read.
 *
 * The buffers are cut from shared slabs and a region is handed out exactly once: each socket
 * claims CLAIM bytes of the current slab and reads into the unused rest of its own claim until
 * less than MIN_READ is left, then claims again (a new slab when the current one is used up).
 * So bytes already passed on — a parsed head's field views, a body chunk handed to a write that
 * completes later, a chunk pushed after an upgrade — are never overwritten by a later read; a slab
 * is garbage once no view into it is left. Node calls the buffer generator after every read (and
 * once when the handle is made), on Node 20 and Node 24 alike; `socket.pause()`/`resume()` stop
 * and restart the handle's reads (net.Socket handles them for `onread` sockets).
 *
 * The cost: a socket holds its unread claim (at most CLAIM bytes) while it waits, and a live view
 * keeps its whole slab. Reads are at most CLAIM bytes (libuv's default is 64 KiB).
 */

import type { Socket } from 'node:net';

export const SLAB_SIZE = 64 * 1024;
export const CLAIM = 16 * 1024;
export const MIN_READ = 2 * 1024;

let slab: Buffer = Buffer.allocUnsafeSlow(SLAB_SIZE);
let slabPos = 0;

/** A fresh region no one else has: CLAIM bytes of the current slab, or of a new one. */
function claim(): Buffer {
  if (SLAB_SIZE - slabPos < CLAIM) {
    slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
    slabPos = 0;
  }
  const b = slab.subarray(slabPos, slabPos + CLAIM);
  slabPos += CLAIM;
  return b;
}

/** What a read is handed to: the bytes read, a view that stays valid. */
export type ReadSink = (chunk: Buffer) => void;

export interface OnRead {
  buffer: () => Buffer;
  callback: (nread: number, buf: Buffer) => boolean;
}

/**
 * One socket's reads. `onread` goes to `net.connect`; `sink` receives every chunk, until
 * `toStream(socket)` hands the socket back to the stream machinery (after an upgrade, whoever
 * takes the socket reads it with 'data' or pipe: the chunks are pushed into its Readable).
 */
export class SlabReader {
  private rest: Buffer | undefined = undefined;
  private pushTo: Socket | undefined = undefined;
  readonly onread: OnRead = {
    buffer: () => this.next(),
    callback: (nread, buf) => this.read(nread, buf),
  };

  /**
   * Where reads go; a connector may point it elsewhere while it sets the socket up (the mesh
   * tunnel reads its CONNECT answer through it) and must put it back before it hands the socket on.
   */
  constructor(public sink: ReadSink) {}

  /** From now on reads go into `s`'s Readable (with its backpressure): for a socket handed on. */
  toStream(s: Socket): void {
    this.pushTo = s;
  }

  private next(): Buffer {
    const r = this.rest;
    this.rest = undefined;
    return r !== undefined && r.length >= MIN_READ ? r : claim();
  }

  private read(nread: number, buf: Buffer): boolean {
    this.rest = buf.subarray(nread);
    const chunk = buf.subarray(0, nread);
    const s = this.pushTo;
    if (s !== undefined) return s.push(chunk); // false: the handle stops reading until _read
    this.sink(chunk);
    return true;
  }
}
