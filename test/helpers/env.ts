/**
 * Gates for tests that need root, a Debian tool or a local server. Outside CI a missing
 * prerequisite skips the test with its reason; under CI=true it fails it, so CI can never go
 * green by skipping (`.ci/run` installs every prerequisite).
 */
import { execFileSync } from 'node:child_process';

export const IN_CI = process.env.CI === 'true' || process.env.CI === '1';

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

export function hasTool(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Returns a reason why the test cannot run here, or undefined when it can. Under CI a missing
 * prerequisite throws, which fails the suite loudly instead of skipping it.
 */
export function missingPrerequisite(opts: { root?: boolean; tools?: readonly string[] }): string | undefined {
  const missing: string[] = [];
  if (opts.root && !isRoot()) missing.push('root');
  for (const t of opts.tools ?? []) if (!hasTool(t)) missing.push(t);
  if (missing.length === 0) return undefined;
  const reason = `needs ${missing.join(', ')}`;
  if (IN_CI) throw new Error(`CI=true but this test ${reason}: .ci/run must install it`);
  return reason;
}
