/**
 * The V8 flags of the sidecar's two processes (proxy/src/supervisor/node-flags.ts, chosen in
 * docs/performance.md, "Memory") reach a real sidecar: the compiled bin started the way the
 * kernel runs its `#!` line (what `remora-proxy` does in the image and in an injected pod), the
 * flags read back from /proc/<pid>/cmdline of the supervisor and of the engine it forked. A flag
 * that NODE_OPTIONS names replaces the engine's built-in one.
 */
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../../proxy/src/contract.js';
import {
  ENGINE_NODE_FLAGS,
  SUPERVISOR_NODE_FLAGS,
  engineExecArgv,
} from '../../../proxy/src/supervisor/node-flags.js';
import { config, request, startSupervisor } from './helpers.js';
import type { RunningSupervisor } from './helpers.js';
import { startRecordingApp } from '../telemetry/sidecar.js';
import type { RecordingApp } from '../telemetry/sidecar.js';

const BIN_SRC = fileURLToPath(new URL('../../../proxy/src/bin/remora-proxy.ts', import.meta.url));
const BIN = fileURLToPath(new URL('../../../proxy/dist/bin/remora-proxy.js', import.meta.url));
const ENGINE = fileURLToPath(new URL('../../../proxy/dist/engine-child.js', import.meta.url));

const cmdline = (pid: number): string[] =>
  readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);

/** The bin's `#!` line as the kernel runs it: the interpreter, its one argument, the file. */
function shebangArgv(file: string): string[] {
  const line = readFileSync(file, 'utf8').split('\n')[0] ?? '';
  const m = /^#!(\S+) (.+)$/.exec(line);
  if (m === null) throw new Error(`${file} has no #! line with an argument: ${line}`);
  return [m[1] as string, m[2] as string, file];
}

let app: RecordingApp;
let sup: RunningSupervisor | undefined;

beforeAll(async () => {
  app = await startRecordingApp();
});
afterAll(() => app.close());
afterEach(async () => {
  await sup?.stop();
  sup = undefined;
});

/** The sidecar as `remora-proxy` starts: the dist bin through its #! line, with this node first on PATH. */
function startBin(extra: Readonly<Record<string, string>> = {}): Promise<RunningSupervisor> {
  return startSupervisor({
    argv: shebangArgv(BIN),
    env: {
      PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`,
      [ENV.inboundTarget]: `127.0.0.1:${app.port}`,
      [ENV.accessLog]: 'off',
      ...extra,
    },
  });
}

describe('the V8 flags of both processes', () => {
  it("the bin's #! line (source and build) carries exactly SUPERVISOR_NODE_FLAGS", () => {
    const line = `#!/usr/bin/env -S node ${SUPERVISOR_NODE_FLAGS.join(' ')}`;
    expect(readFileSync(BIN_SRC, 'utf8').split('\n')[0]).toBe(line);
    expect(readFileSync(BIN, 'utf8').split('\n')[0]).toBe(line);
  });

  it('engineExecArgv: the built-in flags, minus those NODE_OPTIONS names (either spelling, either form)', () => {
    expect(engineExecArgv(undefined)).toEqual([...ENGINE_NODE_FLAGS]);
    expect(engineExecArgv('')).toEqual([...ENGINE_NODE_FLAGS]);
    expect(engineExecArgv('--enable-source-maps --max-old-space-size=512')).toEqual([...ENGINE_NODE_FLAGS]);
    const flags = ['--max-semi-space-size=2', '--v8-pool-size=1'];
    expect(engineExecArgv('--max_semi_space_size=8', flags)).toEqual(['--v8-pool-size=1']);
    expect(engineExecArgv(' --max-semi-space-size 8  --v8-pool-size=4 ', flags)).toEqual([]);
    // a longer name is another flag
    expect(engineExecArgv('--max-semi-space-size-x=1', flags)).toEqual(flags);
  });

  it('a real sidecar started as its #! line starts it: the supervisor runs with its flags, the engine with its own and none of the supervisor’s, and it serves', async () => {
    sup = await startBin();
    const s = sup;
    const supArgv = cmdline(s.proc.pid as number);
    expect(supArgv.slice(1)).toEqual([...SUPERVISOR_NODE_FLAGS, BIN]);
    const engine = (await config(s)).engines[0];
    expect(engine?.state).toBe('ready');
    const engArgv = cmdline(engine?.pid as number);
    expect(engArgv.slice(1)).toEqual([...ENGINE_NODE_FLAGS, ENGINE]);
    expect((await request(s.ports.inbound, '/')).body).toBe('ok');
    expect(app.received.length).toBeGreaterThan(0);
  }, 30_000);

  it('NODE_OPTIONS naming the engine’s flag replaces it: the engine’s command line leaves it out and its environment has the user’s', async () => {
    sup = await startBin({ NODE_OPTIONS: '--max-semi-space-size=8' });
    const s = sup;
    const pid = (await config(s)).engines[0]?.pid as number;
    const argv = cmdline(pid).slice(1);
    expect(argv.filter((a) => a.startsWith('--max-semi-space-size'))).toEqual([]);
    expect(argv).toEqual([
      ...ENGINE_NODE_FLAGS.filter((f) => !f.startsWith('--max-semi-space-size')),
      ENGINE,
    ]);
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    expect(environ).toContain('NODE_OPTIONS=--max-semi-space-size=8');
    // the supervisor's own flag still comes from its command line, which wins over NODE_OPTIONS
    expect(cmdline(s.proc.pid as number)).toContain('--max-semi-space-size=1');
    expect((await request(s.ports.inbound, '/')).status).toBe(200);
  }, 30_000);
});
