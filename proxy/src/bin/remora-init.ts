#!/usr/bin/env node
// remora-init: writes the pod's capture rules and exits (init container, DESIGN §1).
import { main, spawnRunner } from '../init/cli.js';

const code = await main(process.argv.slice(2), {
  run: spawnRunner,
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
});
process.exitCode = code;
