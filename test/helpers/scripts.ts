/**
 * Running the project's own command-line scripts (bench, demo) as child processes, and
 * checking afterwards that the processes they reported starting are gone.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface ScriptExit {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `node <file> ...args`; `watch` sees the output so far (to interrupt at a chosen point). */
export function runScript(
  file: string,
  args: readonly string[],
  cwd: string,
  watch?: (output: { stdout: string; stderr: string }, child: ChildProcess) => void,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ScriptExit> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = { stdout: '', stderr: '' };
    child.stdout.on('data', (c: Buffer) => {
      out.stdout += c.toString('utf8');
      watch?.(out, child);
    });
    child.stderr.on('data', (c: Buffer) => {
      out.stderr += c.toString('utf8');
      watch?.(out, child);
    });
    child.on('close', (code) => resolve({ code, ...out }));
  });
}

/**
 * The `name (pid N)` mentions in `text` whose process still exists; a zombie counts as gone
 * (its parent has not reaped it yet, but it runs nothing and holds no port).
 */
export function stillRunning(text: string): string[] {
  return [...text.matchAll(/(\S+) \(pid (\d+)\)/g)].flatMap((m) => {
    try {
      const stat = readFileSync(`/proc/${m[2] ?? ''}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z') ? [] : [`${m[1] ?? ''} ${m[2] ?? ''}`];
    } catch {
      return [];
    }
  });
}
