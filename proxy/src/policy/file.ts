/**
 * The policy from a file (REMORA_POLICY_FILE): read before the proxy listens (an invalid file
 * is a config error listing every problem), then followed. Polling `stat` (fs.watchFile) is
 * what survives a Kubernetes ConfigMap volume: the kubelet swaps the `..data` symlink to a new
 * directory, so the path keeps its name while the file behind it (its inode) changes; stat
 * follows the symlink and sees that, where an inotify watch on the old file would go quiet.
 */
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { ENV } from '../contract.js';
import { ConfigError } from '../errors.js';
import type { Logger } from '../log.js';
import { compilePolicy } from './compile.js';
import { parsePolicyDocument, policyVersion } from './document.js';
import { policyErrors } from './holder.js';
import type { PolicyHolder } from './holder.js';
import type { WorkloadRef } from './types.js';

export const DEFAULT_POLL_MS = 500;

/** The file's text at start; unreadable is a config error. */
function readAtStart(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([
      `${ENV.policyFile}: ${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    ]);
  }
}

function atStart(file: string, err: unknown): ConfigError {
  return new ConfigError(policyErrors(err).map((e) => `${ENV.policyFile}: ${file}: ${e}`));
}

/**
 * The supervisor's check before it binds anything (its engines would otherwise fail one after
 * another on the same file): throws ConfigError listing every problem of the file.
 */
export function checkPolicyFile(file: string, self: WorkloadRef): void {
  const text = readAtStart(file);
  try {
    compilePolicy(parsePolicyDocument(text), self, policyVersion(text));
  } catch (err) {
    throw atStart(file, err);
  }
}

/**
 * Loads the file into the holder now (throws ConfigError naming the file and every problem),
 * then re-reads it on every change. Returns the function that stops following it.
 */
export function followPolicyFile(
  file: string,
  holder: PolicyHolder,
  log: Logger,
  pollMs = DEFAULT_POLL_MS,
): () => void {
  const text = readAtStart(file);
  try {
    holder.load(text, `file ${file}`);
  } catch (err) {
    throw atStart(file, err);
  }
  let missing = false;
  const reread = (): void => {
    let now: string;
    try {
      now = readFileSync(file, 'utf8');
    } catch (err) {
      // Between the kubelet's two renames, or deleted: keep the policy, say so once.
      if (!missing)
        log.warn(
          { event: 'policy_file_missing', file, err: (err as NodeJS.ErrnoException).code ?? String(err) },
          'policy file unreadable: keeping the last good policy',
        );
      missing = true;
      return;
    }
    missing = false;
    holder.update(now, `file ${file}`);
  };
  watchFile(file, { interval: pollMs, persistent: false }, reread);
  // watchFile takes its baseline stat asynchronously: an edit landing between the read above and
  // that baseline raises no change event, so read once more after the baseline surely exists.
  const settle = setTimeout(reread, pollMs * 2);
  settle.unref();
  return () => {
    clearTimeout(settle);
    unwatchFile(file, reread);
  };
}
