/**
 * A real gRPC peer for the HTTP/2 and gRPC tests (docs/grpc.md): a grpc-js server with one
 * service defined by hand (messages are raw bytes, so no codegen and no proto files) and a
 * client for it. Methods of `remora.test.Echo`:
 *   - Unary: echoes the request bytes. Metadata steers it: `x-status` (+ `x-message`) answers
 *     with that status instead; `x-delay-ms` waits first (the slow method for deadlines);
 *     every `x-echo-*` field comes back in the initial metadata and, as `x-trailer-*`, in the
 *     trailers; `x-server-id` names the server that answered.
 *   - Collect (client stream): answers `{"count":n,"bytes":b}` for the messages it got.
 *   - Spray (server stream): request `{"count":n,"size":s}`, answers n messages of s bytes.
 *   - Chat (bidi): echoes each message as it comes.
 * Every call is recorded with whether it was cancelled by the client.
 *
 * A failing endpoint (`fail`): Unary and Collect answer every call with `fail.code` once the
 * request is in (Collect: at its end). Trailers-only by default (no initial metadata, so
 * grpc-js sends one HEADERS frame with END_STREAM); `headersFirst` sends the metadata first, so
 * the status comes in trailers after a head.
 */
import * as grpc from '@grpc/grpc-js';

const bytes = {
  requestSerialize: (b: Buffer) => b,
  requestDeserialize: (b: Buffer) => b,
  responseSerialize: (b: Buffer) => b,
  responseDeserialize: (b: Buffer) => b,
};

export const ECHO_SERVICE: grpc.ServiceDefinition = {
  unary: { path: '/remora.test.Echo/Unary', requestStream: false, responseStream: false, ...bytes },
  collect: { path: '/remora.test.Echo/Collect', requestStream: true, responseStream: false, ...bytes },
  spray: { path: '/remora.test.Echo/Spray', requestStream: false, responseStream: true, ...bytes },
  chat: { path: '/remora.test.Echo/Chat', requestStream: true, responseStream: true, ...bytes },
};

export interface GrpcCall {
  readonly method: string;
  readonly metadata: Record<string, string>;
  /** the call's `:authority` */
  readonly host: string;
  /** the deadline the server got (ms since the epoch; Infinity: none) */
  readonly deadline: number;
  cancelled: boolean;
  ended: boolean;
}

export interface GrpcPeer {
  readonly port: number;
  readonly id: string;
  readonly calls: GrpcCall[];
  close(): Promise<void>;
}

function meta(m: grpc.Metadata): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(m.getMap())) out[k] = Buffer.isBuffer(v) ? v.toString('base64') : v;
  return out;
}

function echoes(m: grpc.Metadata): { initial: grpc.Metadata; trailing: grpc.Metadata } {
  const initial = new grpc.Metadata();
  const trailing = new grpc.Metadata();
  for (const [k, v] of Object.entries(m.getMap())) {
    if (!k.startsWith('x-echo-') || typeof v !== 'string') continue;
    initial.set(k, v);
    trailing.set(`x-trailer-${k.slice(7)}`, v);
  }
  return { initial, trailing };
}

/** What every server call has (grpc-js does not export its own name for it). */
interface SurfaceCall {
  readonly metadata: grpc.Metadata;
  getHost(): string;
  getDeadline(): Date | number;
  on(event: 'cancelled', listener: () => void): unknown;
}

export interface FailMode {
  readonly code: number;
  readonly headersFirst?: boolean;
}

/** `o.address`: where to bind, as grpc-js spells it (default `127.0.0.1:0`; `unix:/path`). */
export async function startGrpcServer(
  id = 'grpc-1',
  o: { fail?: FailMode; address?: string } = {},
): Promise<GrpcPeer> {
  const fail = o.fail;
  const address = o.address ?? '127.0.0.1:0';
  const failed = (call: { sendMetadata(m: grpc.Metadata): void }, cb: grpc.sendUnaryData<Buffer>): void => {
    const f = fail as FailMode;
    if (f.headersFirst === true) call.sendMetadata(new grpc.Metadata());
    cb({ code: f.code, details: `${id} fails every call` });
  };
  const calls: GrpcCall[] = [];
  const record = (method: string, call: SurfaceCall): GrpcCall => {
    const c: GrpcCall = {
      method,
      metadata: meta(call.metadata),
      host: call.getHost(),
      deadline: Number(call.getDeadline()),
      cancelled: false,
      ended: false,
    };
    calls.push(c);
    call.on('cancelled', () => (c.cancelled = true));
    return c;
  };
  const server = new grpc.Server();
  server.addService(ECHO_SERVICE, {
    unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const c = record('Unary', call);
      const md = call.metadata;
      const { initial, trailing } = echoes(md);
      initial.set('x-server-id', id);
      const delay = Number(md.get('x-delay-ms')[0] ?? 0);
      const answer = () => {
        if (c.cancelled) return;
        c.ended = true;
        if (fail !== undefined) {
          failed(call, cb);
          return;
        }
        call.sendMetadata(initial);
        const status = md.get('x-status')[0];
        if (status !== undefined) {
          cb({
            code: Number(status),
            details: String(md.get('x-message')[0] ?? 'chosen status'),
            metadata: trailing,
          });
          return;
        }
        cb(null, call.request, trailing);
      };
      if (delay > 0) {
        const t = setTimeout(answer, delay);
        call.on('cancelled', () => clearTimeout(t));
      } else answer();
    },
    collect: (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const c = record('Collect', call);
      let count = 0;
      let total = 0;
      call.on('data', (b: Buffer) => {
        count++;
        total += b.length;
      });
      call.on('end', () => {
        c.ended = true;
        if (fail !== undefined) {
          failed(call, cb);
          return;
        }
        cb(null, Buffer.from(JSON.stringify({ count, bytes: total })));
      });
    },
    spray: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const c = record('Spray', call);
      const { count, size } = JSON.parse(call.request.toString()) as { count: number; size: number };
      let i = 0;
      const next = () => {
        while (i < count && !c.cancelled) {
          i++;
          if (!call.write(Buffer.alloc(size, i % 256))) {
            call.once('drain', next);
            return;
          }
        }
        if (!c.cancelled) {
          c.ended = true;
          call.end();
        }
      };
      next();
    },
    chat: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      const c = record('Chat', call);
      call.on('data', (b: Buffer) => call.write(b));
      call.on('end', () => {
        c.ended = true;
        call.end();
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return {
    port,
    id,
    calls,
    close: () =>
      new Promise<void>((resolve) => {
        server.forceShutdown();
        resolve();
      }),
  };
}

export const EchoClient = grpc.makeGenericClientConstructor(ECHO_SERVICE, 'Echo');

/** The client methods, typed (makeGenericClientConstructor's client is untyped). */
export interface Echo extends grpc.Client {
  unary(
    req: Buffer,
    md: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, res?: Buffer) => void,
  ): grpc.ClientUnaryCall;
  collect(
    md: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, res?: Buffer) => void,
  ): grpc.ClientWritableStream<Buffer>;
  spray(req: Buffer, md: grpc.Metadata, opts: grpc.CallOptions): grpc.ClientReadableStream<Buffer>;
  chat(md: grpc.Metadata, opts: grpc.CallOptions): grpc.ClientDuplexStream<Buffer, Buffer>;
}

/**
 * A client on one channel to `127.0.0.1:port` (grpc-js keeps one HTTP/2 connection per channel:
 * the per-call spread test relies on that).
 */
export function grpcClient(port: number): Echo {
  return new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': 8 * 1024 * 1024,
    'grpc.max_send_message_length': 8 * 1024 * 1024,
  }) as unknown as Echo;
}

export interface UnaryResult {
  readonly err: grpc.ServiceError | null;
  readonly res: Buffer | undefined;
  readonly headers: Record<string, string>;
  readonly trailers: Record<string, string>;
}

/** One unary call; resolves with its error (or answer), initial metadata and trailers. */
export function unary(
  client: Echo,
  req: Buffer | string,
  md: Record<string, string> = {},
  opts: grpc.CallOptions = {},
): Promise<UnaryResult> {
  const m = new grpc.Metadata();
  for (const [k, v] of Object.entries(md)) m.set(k, v);
  return new Promise((resolve) => {
    let headers: Record<string, string> = {};
    let trailers: Record<string, string> = {};
    let result: { err: grpc.ServiceError | null; res: Buffer | undefined } | undefined;
    let gotStatus = false;
    const finish = () => {
      if (result !== undefined && gotStatus) resolve({ ...result, headers, trailers });
    };
    const call = client.unary(typeof req === 'string' ? Buffer.from(req) : req, m, opts, (err, res) => {
      result = { err, res };
      finish();
    });
    call.on('metadata', (h: grpc.Metadata) => (headers = meta(h)));
    call.on('status', (s: grpc.StatusObject) => {
      trailers = meta(s.metadata);
      gotStatus = true;
      finish();
    });
  });
}

export { grpc };

/** Client streaming: `count` messages of `size` bytes; resolves with Collect's `{count, bytes}`. */
export function collect(
  client: Echo,
  count: number,
  size: number,
): Promise<{ count: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const call = client.collect(new grpc.Metadata(), {}, (err, b) =>
      err ? reject(err) : resolve(JSON.parse((b as Buffer).toString()) as { count: number; bytes: number }),
    );
    for (let i = 0; i < count; i++) call.write(Buffer.alloc(size, i));
    call.end();
  });
}

/**
 * Server streaming: asks Spray for `count` messages of `size` bytes; resolves with the final
 * status and whether every message came, whole and in order (message i is filled with i % 256).
 */
export function spray(
  client: Echo,
  count: number,
  size: number,
): Promise<{ status: grpc.StatusObject; received: number; inOrder: boolean }> {
  const got: Buffer[] = [];
  return new Promise((resolve) => {
    const call = client.spray(Buffer.from(JSON.stringify({ count, size })), new grpc.Metadata(), {});
    call.on('data', (b: Buffer) => got.push(b));
    call.on('status', (status: grpc.StatusObject) =>
      resolve({
        status,
        received: got.length,
        inOrder: got.every((b, i) => b.length === size && b[0] === (i + 1) % 256),
      }),
    );
    call.on('error', () => undefined);
  });
}

/** Bidi: sends `ping0`, then `ping<i>` as each answer arrives, `rounds` in all; resolves with the answers. */
export function chat(client: Echo, rounds: number): Promise<string[]> {
  const call = client.chat(new grpc.Metadata(), {});
  const back: string[] = [];
  return new Promise((resolve) => {
    call.on('end', () => resolve(back));
    call.on('data', (b: Buffer) => {
      back.push(b.toString());
      if (back.length < rounds) call.write(Buffer.from(`ping${back.length}`));
      else call.end();
    });
    call.write(Buffer.from('ping0'));
  });
}

/**
 * Every status 1..16 chosen by the server, with its message and a trailer: resolves with what
 * did not come back as sent (empty when all did).
 */
export async function statusProblems(client: Echo): Promise<string[]> {
  const problems: string[] = [];
  for (let code = 1; code <= 16; code++) {
    const r = await unary(client, 'x', {
      'x-status': String(code),
      'x-message': `chosen ${code}`,
      'x-echo-n': String(code),
    });
    if (r.err?.code !== code) problems.push(`${code}: got code ${r.err?.code}`);
    if (r.err?.details !== `chosen ${code}`) problems.push(`${code}: got message ${r.err?.details}`);
    if (r.trailers['x-trailer-n'] !== String(code))
      problems.push(`${code}: got trailer ${r.trailers['x-trailer-n']}`);
  }
  return problems;
}

/** A unary call with a message of `size` bytes (not all alike): whether it came back intact. */
export async function echoesIntact(client: Echo, size: number): Promise<boolean> {
  const big = Buffer.alloc(size, 7);
  big[12345 % size] = 42;
  big[size - 1] = 9;
  const r = await unary(client, big);
  return r.err === null && r.res !== undefined && r.res.equals(big);
}
