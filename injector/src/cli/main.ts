/**
 * The `remora` CLI: argument parsing and I/O around the pure commands. File system and streams
 * are parameters so tests can run it in-process as well as through the compiled binary.
 */
import { readFileSync } from 'node:fs';
import { VERSION } from '@remora/proxy/contract';
import { DEFAULT_MESH_CONFIG, parseMeshConfig } from '../config/mesh.js';
import type { MeshConfig } from '../config/mesh.js';
import { RemoraError } from '@remora/proxy';
import { injectManifests } from './inject.js';

export interface CliIo {
  readFile(path: string): string;
  readStdin(): string;
  stdout(text: string): void;
  stderr(text: string): void;
}

export const nodeIo: CliIo = {
  readFile: (p) => readFileSync(p, 'utf8'),
  readStdin: () => readFileSync(0, 'utf8'),
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
};

const USAGE = `usage:
  remora inject -f FILE|- [-f FILE ...] [--mesh-config FILE]   inject the pod templates of manifests
  remora check [--mesh-config FILE]                          validate a mesh config, report versions
  remora version                                             print the version
`;

interface Flags {
  files: string[];
  meshConfig?: string;
}

function parseFlags(args: readonly string[]): Flags | string {
  const flags: Flags = { files: [] };
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    const eq = a.indexOf('=');
    const [name, inline] = a.startsWith('--') && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    const value = (): string | undefined => inline ?? args[++i];
    if (name === '-f' || name === '--filename') {
      const v = value();
      if (v === undefined) return `${name} needs a file name (or - for stdin)`;
      flags.files.push(v);
    } else if (name === '--mesh-config') {
      const v = value();
      if (v === undefined) return '--mesh-config needs a file name';
      flags.meshConfig = v;
    } else return `unknown argument ${JSON.stringify(a)}`;
  }
  return flags;
}

function loadMesh(io: CliIo, file: string | undefined): MeshConfig {
  return file === undefined ? DEFAULT_MESH_CONFIG : parseMeshConfig(io.readFile(file));
}

function message(err: unknown): string {
  return err instanceof RemoraError || err instanceof Error ? err.message : String(err);
}

export function runCli(argv: readonly string[], io: CliIo = nodeIo): number {
  const [command, ...rest] = argv;
  if (command === 'version' || command === '--version') {
    io.stdout(`remora ${VERSION}\n`);
    return 0;
  }
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    (command === undefined ? io.stderr : io.stdout)(USAGE);
    return command === undefined ? 2 : 0;
  }
  const flags = parseFlags(rest);
  if (typeof flags === 'string') {
    io.stderr(`remora ${command}: ${flags}\n${USAGE}`);
    return 2;
  }
  if (command === 'check') {
    try {
      const mesh = loadMesh(io, flags.meshConfig);
      io.stdout(
        `remora ${VERSION} (node ${process.version})\n` +
          `mesh config ${flags.meshConfig ?? '(defaults)'}: ok, proxy image ${mesh.proxyImage}\n`,
      );
      return 0;
    } catch (err) {
      io.stderr(`remora check: ${flags.meshConfig ?? ''}: ${message(err)}\n`);
      return 1;
    }
  }
  if (command === 'inject') {
    if (flags.files.length === 0) {
      io.stderr(`remora inject: -f FILE (or -f - for stdin) is required\n${USAGE}`);
      return 2;
    }
    let mesh: MeshConfig;
    try {
      mesh = loadMesh(io, flags.meshConfig);
    } catch (err) {
      io.stderr(`remora inject: --mesh-config ${flags.meshConfig ?? ''}: ${message(err)}\n`);
      return 1;
    }
    const outputs: string[] = [];
    const report: string[] = [];
    for (const file of flags.files) {
      const name = file === '-' ? '<stdin>' : file;
      try {
        const text = file === '-' ? io.readStdin() : io.readFile(file);
        const r = injectManifests(text, name, mesh);
        if (r.output !== '') outputs.push(r.output);
        report.push(...r.report);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        io.stderr(
          `remora inject: ${typeof code === 'string' && code.startsWith('E') ? `${name}: ` : ''}${message(err)}\n`,
        );
        return 1;
      }
    }
    io.stdout(outputs.join('---\n'));
    if (report.length > 0) io.stderr(`${report.join('\n')}\n`);
    return 0;
  }
  io.stderr(`remora: unknown command ${JSON.stringify(command)}\n${USAGE}`);
  return 2;
}
