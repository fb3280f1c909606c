// Build the packages once before any test: integration and end-to-end tests run the
// compiled binaries (proxy/dist, injector/dist) exactly as the images do.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  const root = fileURLToPath(new URL('..', import.meta.url));
  execFileSync(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '-b', 'proxy', 'injector'], {
    cwd: root,
    stdio: 'inherit',
  });
}
