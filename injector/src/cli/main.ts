/**
 * The `remora` CLI: argument parsing and I/O around the commands. File system, streams and the
 * cluster are parameters so tests can run it in-process as well as through the compiled binary.
 *
 * Exit codes (docs/injector.md): 0 done (every check passed or warned), 1 the command ran and
 * failed (a check failed, a manifest was rejected, a file could not be read), 2 usage error.
 * Offline commands return synchronously; the ones that talk to a cluster return a Promise.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { VERSION } from '@remora/proxy/contract';
import { DEFAULT_MESH_CONFIG, parseMeshConfig } from '../config/mesh.js';
import type { MeshConfig } from '../config/mesh.js';
import { RemoraError } from '@remora/proxy';
import { formatChecks, reasonOf, runChecks } from './check.js';
import { planRestart, runRestart } from './upgrade.js';
import { followRollout, setVersion } from './upgrade-version.js';
import type { ClusterReader, KubeOptions } from './cluster.js';
import { injectManifests } from './inject.js';
import { clusterVersions, formatVersions } from './version.js';
import { ENGINE_VERSION_NAME } from '@remora/proxy/values';

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

/** What touches a cluster, injected (STYLE #8): tests hand in a reader for a real API server. */
export interface CliDeps {
  cluster(opts: KubeOptions): Promise<ClusterReader>;
  /** Runs a program to completion with inherited stdio; resolves its exit code. */
  run(cmd: string, args: readonly string[]): Promise<number>;
}

export const nodeDeps: CliDeps = {
  // Loaded on first use: client-node costs a second at start, and inject needs none of it.
  cluster: async (opts) => {
    const { kubeClusterReader, loadKubeConfig } = await import('./cluster.js');
    return kubeClusterReader(loadKubeConfig(opts));
  },
  run: (cmd, args) =>
    new Promise((resolve) => {
      const child = spawn(cmd, args, { stdio: 'inherit' });
      child.on('error', (err) => {
        process.stderr.write(`remora: ${cmd}: ${err.message}\n`);
        resolve(1);
      });
      child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
    }),
};

interface Flags {
  files: string[];
  positional: string[];
  meshConfig?: string;
  kubeconfig?: string;
  context?: string;
  namespace?: string;
  pre: boolean;
  client: boolean;
  restart: boolean;
  dryRun: boolean;
  noWait: boolean;
  help: boolean;
  /** upgrade --version */
  engineVersion?: string;
  timeout?: string;
}

const CLUSTER_FLAGS = `  --kubeconfig FILE   kubeconfig to use (default: $KUBECONFIG, then ~/.kube/config)
  --context NAME      kubeconfig context (default: the current one)`;

interface Command {
  /** Flags the command takes besides --help. */
  flags: readonly string[];
  usage: string;
}

const COMMANDS: Readonly<Record<string, Command>> = Object.freeze({
  inject: {
    flags: ['-f', '--mesh-config'],
    usage: `usage: remora inject -f FILE|- [-f FILE ...] [--mesh-config FILE]

Injects remora-init and remora-proxy into the pod templates of Kubernetes manifests (Pod,
Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob), with the
same decision and patch as the webhook. The result goes to stdout; one line per object to stderr.
  -f, --filename FILE  a manifest file, or - for stdin (repeatable)
  --mesh-config FILE   the mesh config to inject with (default: the built-in defaults)
Exit: 0 done, 1 a file was unreadable or a workload rejected (nothing printed), 2 usage.
`,
  },
  check: {
    flags: ['--pre', '--mesh-config', '--kubeconfig', '--context', '-n'],
    usage: `usage: remora check [--pre] [-n NAMESPACE] [--kubeconfig FILE] [--context NAME]
       remora check --mesh-config FILE

Checks the mesh in a cluster: API reachable and version supported, injector ready, CA serving,
webhook configured and answering with a matching caBundle (a dry-run pod comes back injected),
namespaces labelled, trust bundle distributed, proxies on the control plane's version. Each check
prints one line ([ok], [warn], [FAIL], [skip]) and a hint when it does not pass.
  --pre               before the install: can you create what deploy/base holds, is the name free
  -n, --namespace NS  the control plane's namespace (default remora-system)
${CLUSTER_FLAGS}
  --mesh-config FILE  only validate a mesh config file, offline (every error listed)
Exit: 0 every check passed or warned, 1 a check failed, 2 usage.
`,
  },
  version: {
    flags: ['--client', '--kubeconfig', '--context', '-n'],
    usage: `usage: remora version [--client] [-n NAMESPACE] [--kubeconfig FILE] [--context NAME]

Prints the client's version, the control plane's (the injector Deployment's image), and the
proxies' (from each meshed pod's remora.dev/status, counted per version).
  --client            the client's version only (no cluster needed)
  -n, --namespace NS  the control plane's namespace (default remora-system)
${CLUSTER_FLAGS}
Exit: 0 printed (an unreachable cluster is reported, not fatal), 2 usage.
`,
  },
  upgrade: {
    flags: [
      '--restart',
      '--dry-run',
      '--version',
      '--no-wait',
      '--timeout',
      '-n',
      '--kubeconfig',
      '--context',
    ],
    usage: `usage: remora upgrade --version V [--no-wait] [--timeout SECONDS] [-n NAMESPACE] [--kubeconfig FILE] [--context NAME]
       remora upgrade --restart [--dry-run] [-n NAMESPACE] [--kubeconfig FILE] [--context NAME]

--version: the in-place path (docs/upgrades.md). Sets engine.version in the mesh config
(ConfigMap remora-system/remora-mesh-config); the injector serves that engine bundle and every
proxy fetches it, checks its digest and upgrades in place without a restart, a bounded number
of pods at a time (engine.rollout.maxConcurrent), rolling back by itself when the new engine
is not ready. Then follows the rollout per pod (what each proxy reported, ConfigMap
remora-system/remora-engine-status) until every meshed pod runs V or has rolled back. \`builtin\` is the engine each image ships.
  --version V         the engine bundle name (or builtin)
  --no-wait           set the version and exit
  --timeout SECONDS   how long to follow (default 600)

--restart: the image path. Finds the meshed pods whose proxy version (remora.dev/status)
differs from the control plane's, and restarts the Deployments, StatefulSets and DaemonSets that
own them, once each, as \`kubectl rollout restart\` does (the proxy drains, so the rolling
restart loses no request). Pods without a controller, and Jobs, are listed and left alone.
  --restart           restart the workloads
  --dry-run           only list what would be restarted
  -n, --namespace NS  only pods in NS (default: every namespace)
${CLUSTER_FLAGS}
Exit: 0 every pod on V / every workload restarted (or nothing to do), 1 a pod rolled back or
refused V, the timeout passed, or a restart failed, 2 usage.
`,
  },
  'proxy-config': {
    flags: ['-n', '--kubeconfig', '--context'],
    usage: `usage: remora proxy-config POD [-n NAMESPACE] [--kubeconfig FILE] [--context NAME]

Prints the effective configuration of a pod's proxy (GET /config on its admin port), through
\`kubectl exec POD -c remora-proxy -- remora-proxy admin config\` (kubectl on the PATH).
  -n, --namespace NS  the pod's namespace (default: the context's)
${CLUSTER_FLAGS}
Exit: kubectl's exit code (0 printed), 2 usage.
`,
  },
});

const USAGE = `usage: remora COMMAND [FLAGS]

commands:
  inject        inject the pod templates of manifests (same code as the webhook)
  check         check the mesh in a cluster (--pre before the install), or a mesh config file
  version       client, control plane and proxy versions
  upgrade       --version V: a new engine in place, pod by pod; --restart: the image path
  proxy-config  a pod's proxy configuration
  help          this text; \`remora COMMAND --help\` for one command

Exit codes: 0 done, 1 the command failed (a check, a rejected manifest), 2 usage error.
`;

const SWITCHES: Readonly<Record<string, 'pre' | 'client' | 'restart' | 'dryRun' | 'noWait'>> = Object.freeze({
  '--pre': 'pre',
  '--no-wait': 'noWait',
  '--client': 'client',
  '--restart': 'restart',
  '--dry-run': 'dryRun',
});

function parseFlags(command: string, allowed: readonly string[], args: readonly string[]): Flags | string {
  const flags: Flags = {
    files: [],
    positional: [],
    pre: false,
    client: false,
    restart: false,
    dryRun: false,
    noWait: false,
    help: false,
  };
  const alias: Record<string, string> = { '--filename': '-f', '--namespace': '-n' };
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    const eq = a.indexOf('=');
    const [raw, inline] = a.startsWith('--') && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    const name = alias[raw] ?? raw;
    if (name === '--help' || name === '-h') {
      flags.help = true;
      continue;
    }
    if (!name.startsWith('-') || name === '-') {
      flags.positional.push(a);
      continue;
    }
    if (!allowed.includes(name)) return `unknown argument ${JSON.stringify(a)} for ${command}`;
    const toggle = SWITCHES[name];
    if (toggle !== undefined) {
      if (inline !== undefined) return `${raw} takes no value`;
      flags[toggle] = true;
      continue;
    }
    const v = inline ?? args[++i];
    if (v === undefined || v === '') return `${raw} needs a value`;
    if (name === '-f') flags.files.push(v);
    else if (name === '--mesh-config') flags.meshConfig = v;
    else if (name === '--kubeconfig') flags.kubeconfig = v;
    else if (name === '--context') flags.context = v;
    else if (name === '-n') flags.namespace = v;
    else if (name === '--version') flags.engineVersion = v;
    else if (name === '--timeout') flags.timeout = v;
  }
  return flags;
}

function loadMesh(io: CliIo, file: string | undefined): MeshConfig {
  return file === undefined ? DEFAULT_MESH_CONFIG : parseMeshConfig(io.readFile(file));
}

function message(err: unknown): string {
  return err instanceof RemoraError || err instanceof Error ? err.message : String(err);
}

const kubeOptions = (f: Flags): KubeOptions => ({
  ...(f.kubeconfig !== undefined ? { kubeconfig: f.kubeconfig } : {}),
  ...(f.context !== undefined ? { context: f.context } : {}),
});

export function runCli(
  argv: readonly string[],
  io: CliIo = nodeIo,
  deps: CliDeps = nodeDeps,
): number | Promise<number> {
  const [command, ...rest] = argv;
  if (command === '--version') return runCli(['version', '--client'], io, deps);
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    const topic = command === 'help' ? rest[0] : undefined;
    const text = topic !== undefined ? COMMANDS[topic]?.usage : USAGE;
    if (text === undefined) {
      io.stderr(`remora help: unknown command ${JSON.stringify(topic)}\n${USAGE}`);
      return 2;
    }
    (command === undefined ? io.stderr : io.stdout)(text);
    return command === undefined ? 2 : 0;
  }
  const spec = COMMANDS[command];
  if (spec === undefined) {
    io.stderr(`remora: unknown command ${JSON.stringify(command)}\n${USAGE}`);
    return 2;
  }
  const flags = parseFlags(command, spec.flags, rest);
  if (typeof flags === 'string') {
    io.stderr(`remora ${command}: ${flags}\n${spec.usage}`);
    return 2;
  }
  if (flags.help) {
    io.stdout(spec.usage);
    return 0;
  }
  const extra = command === 'proxy-config' ? flags.positional.slice(1) : flags.positional;
  if (extra.length > 0) {
    io.stderr(`remora ${command}: unexpected argument ${JSON.stringify(extra[0])}\n${spec.usage}`);
    return 2;
  }
  switch (command) {
    case 'inject':
      return inject(io, flags);
    case 'check':
      return check(io, deps, flags);
    case 'version':
      return version(io, deps, flags);
    case 'upgrade':
      return upgrade(io, deps, flags, spec.usage);
    default:
      return proxyConfig(io, deps, flags, spec.usage);
  }
}

function inject(io: CliIo, flags: Flags): number {
  if (flags.files.length === 0) {
    io.stderr(`remora inject: -f FILE (or -f - for stdin) is required\n${COMMANDS.inject?.usage ?? ''}`);
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

function check(io: CliIo, deps: CliDeps, flags: Flags): number | Promise<number> {
  if (flags.meshConfig !== undefined) {
    try {
      const mesh = loadMesh(io, flags.meshConfig);
      io.stdout(
        `remora ${VERSION} (node ${process.version})\n` +
          `mesh config ${flags.meshConfig}: ok, proxy image ${mesh.proxyImage}\n`,
      );
      return 0;
    } catch (err) {
      io.stderr(`remora check: ${flags.meshConfig}: ${message(err)}\n`);
      return 1;
    }
  }
  return deps.cluster(kubeOptions(flags)).then(
    async (reader) => {
      const results = await runChecks(reader, {
        pre: flags.pre,
        ...(flags.namespace ? { namespace: flags.namespace } : {}),
      });
      io.stdout(formatChecks(results));
      return results.some((r) => r.verdict === 'fail') ? 1 : 0;
    },
    (err: unknown) => {
      io.stderr(`remora check: kubeconfig: ${message(err)}\n`);
      return 1;
    },
  );
}

function version(io: CliIo, deps: CliDeps, flags: Flags): number | Promise<number> {
  if (flags.client) {
    io.stdout(`remora ${VERSION}\n`);
    return 0;
  }
  return deps.cluster(kubeOptions(flags)).then(
    async (reader) => {
      io.stdout(formatVersions(await clusterVersions(reader, flags.namespace)));
      return 0;
    },
    (err: unknown) => {
      io.stdout(`client: ${VERSION}\ncontrol plane: unavailable (kubeconfig: ${message(err)})\n`);
      return 0;
    },
  );
}

function upgrade(io: CliIo, deps: CliDeps, flags: Flags, usage: string): number | Promise<number> {
  if (flags.engineVersion !== undefined) return upgradeVersion(io, deps, flags, usage);
  if (!flags.restart) {
    io.stderr(`remora upgrade: --version V (in place) or --restart (the image path) is required\n${usage}`);
    return 2;
  }
  return deps.cluster(kubeOptions(flags)).then(
    async (reader) => {
      try {
        const plan = await planRestart(
          reader,
          flags.namespace !== undefined ? { namespace: flags.namespace } : {},
        );
        for (const l of plan.left) io.stdout(`left alone: ${l}\n`);
        if (plan.workloads.length === 0) {
          io.stdout(`every meshed pod runs proxy ${plan.target}: nothing to restart\n`);
          return 0;
        }
        if (flags.dryRun) {
          for (const w of plan.workloads)
            io.stdout(`would restart ${w.kind}/${w.name} in ${w.namespace}: ${w.pods.join(', ')}\n`);
          return 0;
        }
        const failed = await runRestart(reader, plan, (line) => io.stdout(`${line}\n`));
        io.stdout(
          `${plan.workloads.length - failed} of ${plan.workloads.length} workload(s) restarted toward proxy ${plan.target}; \`remora check\` follows the rollout\n`,
        );
        return failed > 0 ? 1 : 0;
      } catch (err) {
        io.stderr(`remora upgrade: ${reasonOf(err)}\n`);
        return 1;
      }
    },
    (err: unknown) => {
      io.stderr(`remora upgrade: kubeconfig: ${message(err)}\n`);
      return 1;
    },
  );
}

function upgradeVersion(io: CliIo, deps: CliDeps, flags: Flags, usage: string): number | Promise<number> {
  const version = flags.engineVersion as string;
  if (flags.restart || flags.dryRun) {
    io.stderr(`remora upgrade: --version and --restart/--dry-run are two different upgrades\n${usage}`);
    return 2;
  }
  if (!ENGINE_VERSION_NAME.test(version)) {
    io.stderr(
      `remora upgrade: --version ${JSON.stringify(version)} is not a bundle name ([A-Za-z0-9._-])\n${usage}`,
    );
    return 2;
  }
  const timeout = flags.timeout === undefined ? 600 : Number(flags.timeout);
  if (!Number.isFinite(timeout) || timeout <= 0) {
    io.stderr(
      `remora upgrade: --timeout ${JSON.stringify(flags.timeout)} is not a number of seconds\n${usage}`,
    );
    return 2;
  }
  return deps.cluster(kubeOptions(flags)).then(
    async (api) => {
      try {
        const { previous } = await setVersion(api, version);
        io.stdout(
          previous === version
            ? `mesh config already names engine ${version}\n`
            : `mesh config: engine ${previous} -> ${version}\n`,
        );
        if (flags.noWait) return 0;
        return await followRollout(api, version, {
          ...(flags.namespace !== undefined ? { namespace: flags.namespace } : {}),
          timeoutMs: timeout * 1000,
          out: (line) => io.stdout(`${line}\n`),
        });
      } catch (err) {
        io.stderr(`remora upgrade: ${reasonOf(err)}\n`);
        return 1;
      }
    },
    (err: unknown) => {
      io.stderr(`remora upgrade: kubeconfig: ${message(err)}\n`);
      return 1;
    },
  );
}

function proxyConfig(io: CliIo, deps: CliDeps, flags: Flags, usage: string): number | Promise<number> {
  const pod = flags.positional[0];
  if (pod === undefined) {
    io.stderr(`remora proxy-config: POD is required\n${usage}`);
    return 2;
  }
  const args = [
    ...(flags.kubeconfig !== undefined ? ['--kubeconfig', flags.kubeconfig] : []),
    ...(flags.context !== undefined ? ['--context', flags.context] : []),
    ...(flags.namespace !== undefined ? ['-n', flags.namespace] : []),
    'exec',
    pod,
    '-c',
    'remora-proxy',
    '--',
    'remora-proxy',
    'admin',
    'config',
  ];
  return deps.run('kubectl', args);
}
