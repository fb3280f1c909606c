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

/** net.Socket's own slots for `onread` (its constructor sets all three on every socket). */
interface ReadSlots {
  buffer: symbol;
  callback: symbol;
  generator: symbol;
}
let slots: ReadSlots | null | undefined;

function slotsOf(s: Socket): ReadSlots | null {
  if (slots !== undefined) return slots;
  const find = (d: string) => Object.getOwnPropertySymbols(s).find((k) => k.description === d);
  const buffer = find('kBuffer');
  const callback = find('kBufferCb');
  const generator = find('kBufferGen');
  slots = buffer && callback && generator ? { buffer, callback, generator } : null;
  return slots;
}

/**
 * Makes a socket net created for us (an accepted one: net.Server and tls.Server take no
 * `onread`) read as if it had been given `onread`: into `rd`'s slab buffers, to `rd.sink`, no
 * Readable push, no new ArrayBuffer per read (Node allocates 64 KiB and shrinks it to the read,
 * ~2,800 instructions per read, plus the Buffer made over it). A TLS socket too: TLSWrap then
 * decrypts into the buffer given, as for `tls.connect` with `onread`. It sets the three slots
 * net.Socket keeps for `onread` and hands the handle its first buffer (`useUserBuffer`, what net
 * does for `onread`): from then on net treats it as an `onread` socket (pause() and resume()
 * stop and restart the handle's reads). Bytes already in the Readable (unshifted by the
 * detection) still come out as 'data'. Only for a socket that is not yet one, on a Node whose
 * sockets have the slots; false (nothing changed) otherwise. Node 20 and 24 (readslab.test.ts).
 */
export function takeReads(s: Socket, rd: SlabReader): boolean {
  const handle = (s as unknown as { _handle?: { useUserBuffer?: (b: Buffer) => void } | null })._handle;
  if (handle == null || typeof handle.useUserBuffer !== 'function') return false;
  const k = slotsOf(s);
  if (k === null) return false;
  const o = s as unknown as Record<symbol, unknown>;
  if (o[k.buffer] !== null || o[k.callback] !== null || o[k.generator] !== null) return false;
  const first = rd.onread.buffer();
  o[k.buffer] = first;
  o[k.callback] = rd.onread.callback;
  o[k.generator] = rd.onread.buffer;
  handle.useUserBuffer(first);
  return true;
}
