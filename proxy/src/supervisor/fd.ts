/**
 * dup()/close() for listener fds, through the small native addon proxy/native/fdutil.cc. The
 * supervisor holds every data socket as a raw fd that no event loop accepts on (DESIGN §4):
 * Node can only listen on an fd by owning it, and closes it when the server closes, so the
 * supervisor hands each user (an engine, the degraded relay) its own copy.
 */
import { createRequire } from 'node:module';
import { FdutilMissingError } from '../errors.js';

interface FdUtil {
  dup(fd: number): number;
  close(fd: number): void;
}

let addon: FdUtil | undefined;
let loadError: Error | undefined;
try {
  const require = createRequire(import.meta.url);
  // src/supervisor and dist/supervisor are both two levels below proxy/.
  addon = require('../../native/build/Release/fdutil.node') as FdUtil;
} catch (err) {
  loadError = err as Error;
}

function need(): FdUtil {
  if (addon === undefined) {
    throw new FdutilMissingError(loadError?.message ?? 'unknown');
  }
  return addon;
}

/** A close-on-exec copy of fd (the same open socket). */
export function dupFd(fd: number): number {
  return need().dup(fd);
}

export function closeFd(fd: number): void {
  need().close(fd);
}
