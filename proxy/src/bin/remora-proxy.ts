#!/usr/bin/env node
import { main } from '../main.js';

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(
      `remora-proxy: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
