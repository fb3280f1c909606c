/**
 * The Node/V8 flags of the sidecar's two processes, chosen by measurement (docs/performance.md,
 * "Memory": the young-generation curve and the supervisor's flags).
 *
 * - The engine is forked with ENGINE_NODE_FLAGS as its execArgv. A flag that NODE_OPTIONS also
 *   names is left out, so that NODE_OPTIONS (Node's own variable, which both processes read)
 *   is how a user changes one; no Remora variable for it.
 * - The supervisor gets SUPERVISOR_NODE_FLAGS from the bin's `#!/usr/bin/env -S node …` line,
 *   so `remora-proxy` (what the injector and the image run) starts with them; `node
 *   remora-proxy.js` runs without. test/proxy/supervisor/node-flags.test.ts checks that the
 *   line and this list agree and that both reach a real sidecar's /proc/<pid>/cmdline.
 */

/**
 * The engine: a young generation of 2 MB semi-spaces instead of V8's default (16 MB), and no
 * Maglev (Node 24's mid-tier compiler; off by default on Node 20): both cost memory, and on
 * Node 24 Maglev measured more CPU per request too.
 */
export const ENGINE_NODE_FLAGS: readonly string[] = Object.freeze(['--max-semi-space-size=2', '--no-maglev']);

/**
 * The supervisor (not on the data path): the smallest young generation and one V8 worker thread
 * instead of four (7 threads → 4).
 */
export const SUPERVISOR_NODE_FLAGS: readonly string[] = Object.freeze([
  '--max-semi-space-size=1',
  '--v8-pool-size=1',
]);

/** `--max_semi_space_size=4` and `--max-semi-space-size 4` both name `max-semi-space-size`. */
function flagName(arg: string): string | undefined {
  if (!arg.startsWith('--')) return undefined;
  const eq = arg.indexOf('=');
  return (eq < 0 ? arg.slice(2) : arg.slice(2, eq)).replaceAll('_', '-');
}

/** The engine's execArgv: each of `flags` unless NODE_OPTIONS sets the same flag. */
export function engineExecArgv(
  nodeOptions: string | undefined,
  flags: readonly string[] = ENGINE_NODE_FLAGS,
): string[] {
  const named = new Set(
    (nodeOptions ?? '')
      .split(/\s+/)
      .map(flagName)
      .filter((n) => n !== undefined),
  );
  return flags.filter((f) => !named.has(flagName(f) as string));
}
