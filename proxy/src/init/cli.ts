/**
 * remora-init's command line: parse every flag first (all errors, exit 2, nothing touched),
 * then dry-run, cleanup or apply. The world is reached only through `deps`.
 */
import { spawn } from 'node:child_process';
import { ConfigError, RemoraError } from '../errors.js';
import { applyRules, cleanupRules, dryRunText } from './apply.js';
import type { Runner } from './apply.js';
import { USAGE, parseInitArgs } from './options.js';
import type { InitArgs } from './options.js';

export interface CliDeps {
  readonly run: Runner;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

/** Exit codes: 0 done, 1 iptables failed, 2 bad flags. */
export const EXIT = Object.freeze({ ok: 0, failed: 1, usage: 2 });

/** The real runner: spawns the command, stdin from `input`, collects both outputs. */
export const spawnRunner: Runner = (cmd, args, input) =>
  new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    // A missing binary is an exit code like the shell's, so callers handle one kind of failure.
    child.on('error', (err) => resolve({ code: 127, stdout, stderr: stderr + err.message }));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
  });

export async function main(argv: readonly string[], deps: CliDeps): Promise<number> {
  let args: InitArgs;
  try {
    args = parseInitArgs(argv);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    deps.stderr(`remora-init: ${err.message}\n\n${USAGE}\n`);
    return EXIT.usage;
  }
  const log = (line: string): void => deps.stderr(`remora-init: ${line}\n`);
  try {
    switch (args.mode) {
      case 'help':
        deps.stdout(`${USAGE}\n`);
        return EXIT.ok;
      case 'dry-run':
        deps.stdout(dryRunText(args.options));
        return EXIT.ok;
      case 'cleanup':
        await cleanupRules(args.options, args.backend, { run: deps.run, log });
        return EXIT.ok;
      case 'apply':
        await applyRules(args.options, args.backend, { run: deps.run, log });
        return EXIT.ok;
    }
  } catch (err) {
    if (!(err instanceof RemoraError)) throw err;
    log(`${err.code}: ${err.message}`);
    return EXIT.failed;
  }
}
