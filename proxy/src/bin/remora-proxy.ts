#!/usr/bin/env -S node --max-semi-space-size=1 --v8-pool-size=1
// remora-proxy: the supervisor (DESIGN §1, §4), which owns every listening socket and forks the
// engine (../engine-child.js). The engine alone, without a supervisor, is ../main.js.
// The flags on the first line are the supervisor's (SUPERVISOR_NODE_FLAGS in
// ../supervisor/node-flags.ts, which a test keeps equal): `remora-proxy` starts with them.
// `remora-proxy admin COMMAND` is the admin API's client for inside the pod (no curl in the image).
import { fileURLToPath } from 'node:url';

const fail = (err: unknown): never => {
  process.stderr.write(`remora-proxy: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
};

if (process.argv[2] === 'admin') {
  import('../admin/client.js')
    .then(({ runAdmin }) => runAdmin(process.argv.slice(3)))
    .then((code) => {
      process.exitCode = code;
    }, fail);
} else {
  import('../supervisor/main.js')
    .then(({ main }) => main(fileURLToPath(new URL('../engine-child.js', import.meta.url))))
    .catch(fail);
}
