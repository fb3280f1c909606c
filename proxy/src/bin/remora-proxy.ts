#!/usr/bin/env node
// remora-proxy: the supervisor (DESIGN §1, §4), which owns every listening socket and forks the
// engine (../engine-child.js). The engine alone, without a supervisor, is ../main.js.
import { fileURLToPath } from 'node:url';
import { main } from '../supervisor/main.js';

main(fileURLToPath(new URL('../engine-child.js', import.meta.url))).catch((err: unknown) => {
  process.stderr.write(`remora-proxy: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
