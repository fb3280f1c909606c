/**
 * The images `npm run images` built (images/build.sh), run with podman the way a cluster runs
 * them (images/podman.sh adds what this machine needs): remora-init as root with NET_ADMIN and
 * NET_RAW only in a harness pod's network namespace, remora-proxy as 1337:1337 on a read-only
 * root with every capability dropped, remora-injector as 65532 on a read-only root with a mounted
 * certificate and mesh config. Nothing is built here: .ci/run runs `npm run images` first; a
 * machine without the images skips (CI fails) with that hint.
 *
 * Containers are named rmri-<run>-<pid>-<role> and removed by name in afterAll, by an exit hook
 * if afterAll never ran, and by the next run when their owner PID is dead.
 */
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parseMeshConfig } from '../../injector/src/config/mesh.js';
import { evaluate } from '../../injector/src/inject/evaluate.js';
import type { NamespaceInfo, PodLike } from '../../injector/src/inject/types.js';
import { ENV, HEALTH_PATHS, PORTS, PROXY_GID, PROXY_UID } from '../../proxy/src/contract.js';
import { IN_CI, missingPrerequisite } from '../helpers/env.js';
import {
  Harness,
  REPO_ROOT,
  eventually,
  httpRequest,
  natTable,
  parsePrometheus,
} from '../e2e/harness/index.js';
import type { Pod } from '../e2e/harness/index.js';
import { runInit } from '../e2e/harness/remora.js';
import { ENGINE_NODE_FLAGS, SUPERVISOR_NODE_FLAGS } from '../../proxy/src/supervisor/node-flags.js';

const PODMAN = join(REPO_ROOT, 'images/podman.sh');
const TAG = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string })
  .version;
const REPO = process.env.REMORA_IMAGE_REPO ?? 'ghcr.io/remora-mesh';
const PROXY_IMAGE = `${REPO}/remora-proxy:${TAG}`;
const INJECTOR_IMAGE = `${REPO}/remora-injector:${TAG}`;
const INJECTOR_UID = 65532;
const PREFIX = 'rmri';
/** Per test: containers start in seconds, but CI shares two cores with everything else. */
const CONTAINER_TEST_MS = 120_000;
/**
 * What every Remora container's securityContext says (allowPrivilegeEscalation false,
 * readOnlyRootFilesystem, capabilities drop ALL): no writable path but the mounts each test adds
 * (podman's default tmpfs on /run, /tmp and /var/tmp is turned off).
 */
const LOCKED_DOWN = [
  '--cap-drop=ALL',
  '--security-opt',
  'no-new-privileges',
  '--read-only',
  '--read-only-tmpfs=false',
] as const;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function podman(args: readonly string[], timeoutMs = 60_000): Promise<Result> {
  return new Promise((resolve) => {
    execFile(PODMAN, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function podmanOk(args: readonly string[], timeoutMs?: number): Promise<string> {
  const r = await podman(args, timeoutMs);
  if (r.code !== 0) throw new Error(`podman ${args.join(' ')} exited ${r.code}:\n${r.stderr}`);
  return r.stdout;
}

function imagesMissing(): string | undefined {
  const missing = [PROXY_IMAGE, INJECTOR_IMAGE].filter((img) => {
    try {
      execFileSync('podman', ['image', 'exists', img], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length === 0) return undefined;
  const reason = `needs ${missing.join(', ')}: run \`npm run images\``;
  if (IN_CI) throw new Error(`CI=true but this test ${reason} (.ci/run builds them before npm test)`);
  return reason;
}

const skip =
  missingPrerequisite({
    root: true,
    tools: ['podman', 'buildah', 'runc', 'ip', 'iptables-save', 'openssl', 'setpriv'],
  }) ?? imagesMissing();

/** Containers of dead test runs (their owner PID is gone), removed before this run starts. */
function sweepContainers(): void {
  let names: string[];
  try {
    names = execFileSync('podman', ['ps', '-a', '--format', '{{.Names}}', '--filter', `name=^${PREFIX}-`], {
      encoding: 'utf8',
    })
      .split('\n')
      .filter(Boolean);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(/^rmri-[0-9a-f]+-(\d+)-/.exec(name)?.[1]);
    let alive = false;
    try {
      process.kill(pid, 0);
      alive = true;
    } catch (err) {
      alive = (err as NodeJS.ErrnoException).code === 'EPERM';
    }
    if (!alive) execFileSync('podman', ['rm', '-f', '-t', '0', name], { stdio: 'ignore' });
  }
}

describe.skipIf(skip !== undefined)(`the built images under podman ${skip ?? ''}`, () => {
  const runId = randomBytes(3).toString('hex');
  const containers = new Set<string>();
  let h: Harness;
  let dir: string;
  const name = (role: string): string => {
    const n = `${PREFIX}-${runId}-${process.pid}-${role}`;
    containers.add(n);
    return n;
  };
  const removeAll = (): void => {
    for (const n of containers) {
      try {
        execFileSync('podman', ['rm', '-f', '-t', '0', n], { stdio: 'ignore' });
      } catch {
        // Already gone.
      }
    }
    containers.clear();
  };

  beforeAll(() => {
    sweepContainers();
    process.on('exit', removeAll);
    h = Harness.create();
    dir = mkdtempSync(join(tmpdir(), 'remora-images-'));
  });
  afterAll(async () => {
    removeAll();
    process.off('exit', removeAll);
    await h?.teardown();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** `podman run` of remora-init in `pod`, as the injector's init container runs it. */
  function runInitImage(pod: Pod, caps: readonly string[]): Promise<Result> {
    return podman([
      'run',
      '--rm',
      '--name',
      name(`init-${pod.name}`),
      '--network',
      `ns:/run/netns/${pod.ns}`,
      '--user',
      '0:0',
      ...LOCKED_DOWN,
      ...caps.map((c) => `--cap-add=${c}`),
      // The emptyDir the injector mounts on /run (iptables' xtables lock).
      '--mount',
      'type=tmpfs,destination=/run',
      PROXY_IMAGE,
      'node',
      '/app/proxy/dist/bin/remora-init.js',
    ]);
  }

  it(
    'remora-init, as root with NET_ADMIN and NET_RAW only, writes in the pod’s namespace exactly the rules of the compiled binary',
    async () => {
      const fromImage = h.addPod('img');
      const fromBinary = h.addPod('bin');
      const r = await runInitImage(fromImage, ['NET_ADMIN', 'NET_RAW']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/ipv4: \d+ rules in \d+ chains applied/);
      await runInit(h, fromBinary);
      const table = await natTable(h, fromImage);
      expect(table).toContain(`-A REMORA_REDIRECT -p tcp -j REDIRECT --to-ports ${PORTS.outbound}`);
      expect(table).toContain(`--uid-owner ${PROXY_UID} -j RETURN`);
      expect(table).toEqual(await natTable(h, fromBinary));
      expect(await natTable(h, fromImage, 'ip6tables-save')).toEqual(
        await natTable(h, fromBinary, 'ip6tables-save'),
      );
    },
    CONTAINER_TEST_MS,
  );

  it(
    'remora-init without NET_ADMIN fails with iptables’ error and leaves the namespace without rules',
    async () => {
      const pod = h.addPod('nocap');
      const r = await runInitImage(pod, ['NET_RAW']);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/Permission denied|not permitted/i);
      expect(await natTable(h, pod)).not.toContain('REMORA');
    },
    CONTAINER_TEST_MS,
  );

  it(
    'remora-proxy serves as 1337:1337 on a read-only root with every capability dropped: ready and metrics from the next pod, and a clean stop',
    async () => {
      const pod = h.addPod('proxy');
      const client = h.addPod('client');
      const n = name('proxy');
      await podmanOk([
        'run',
        '--detach',
        '--name',
        n,
        '--network',
        `ns:/run/netns/${pod.ns}`,
        '--user',
        `${PROXY_UID}:${PROXY_GID}`,
        ...LOCKED_DOWN,
        // The emptyDir the injector mounts for the admin token: the only writable path.
        '--mount',
        'type=tmpfs,destination=/var/run/remora,tmpfs-mode=0700,chown=true',
        '--env',
        `${ENV.drainSeconds}=1`,
        PROXY_IMAGE,
      ]);
      const ready = await eventually(
        'remora-proxy image ready',
        () => httpRequest(h, client, `http://${pod.ip}:${PORTS.health}${HEALTH_PATHS.ready}`),
        (res) => res.ok && res.status === 200,
        30_000,
      );
      expect(ready).toMatchObject({ ok: true, status: 200 });
      const metrics = await httpRequest(h, client, `http://${pod.ip}:${PORTS.metrics}/metrics`);
      expect(metrics).toMatchObject({ ok: true, status: 200 });
      const degraded = parsePrometheus(metrics.ok ? metrics.body : '').find(
        (s) => s.name === 'remora_proxy_degraded',
      );
      expect(degraded?.value).toBe(0);

      // Every process of the container: UID and GID 1337, no effective capability.
      const top = (await podmanOk(['top', n, 'huser', 'hgroup', 'capeff'])).trim().split('\n').slice(1);
      expect(top.length).toBeGreaterThanOrEqual(3); // tini, the supervisor, the engine
      for (const line of top)
        expect(line.split(/\s+/)).toEqual([String(PROXY_UID), String(PROXY_GID), 'none']);
      // The V8 flags of both processes (proxy/src/supervisor/node-flags.ts), read from the host's
      // /proc/<pid>/cmdline: the supervisor's from the bin's #! line (the image runs
      // `tini -- remora-proxy`, as the injector does), the engine's from the supervisor's fork.
      const argvs = (await podmanOk(['top', n, 'hpid']))
        .trim()
        .split('\n')
        .slice(1)
        .map((pid) => readFileSync(`/proc/${pid.trim()}/cmdline`, 'utf8').split('\0').slice(0, -1));
      expect(argvs).toContainEqual(['node', ...SUPERVISOR_NODE_FLAGS, '/usr/local/bin/remora-proxy']);
      expect(argvs).toContainEqual([
        '/usr/local/bin/node',
        ...ENGINE_NODE_FLAGS,
        '/app/proxy/dist/engine-child.js',
      ]);
      // The root filesystem refuses writes even where the mode bits allow them (/tmp is 1777).
      const write = await podman(['exec', n, 'sh', '-c', 'touch /tmp/x']);
      expect(write.code).not.toBe(0);
      expect(write.stderr).toMatch(/Read-only file system/);
      // The runtime the Dockerfiles promise (node:24-bookworm-slim or the base images/base.sh makes).
      expect((await podmanOk(['exec', n, 'node', '--version'])).trim()).toMatch(/^v24\./);
      const token = await podman(['exec', n, 'sh', '-c', 'stat -c "%u %a" /var/run/remora/admin-token']);
      expect(token.stdout.trim()).toBe(`${PROXY_UID} 600`);

      // SIGTERM reaches the supervisor through tini; it drains (1 s here) and exits 0.
      await podmanOk(['stop', '-t', '20', n], 30_000);
      expect((await podmanOk(['inspect', '--format', '{{.State.ExitCode}}', n])).trim()).toBe('0');
    },
    CONTAINER_TEST_MS,
  );

  /** A serving certificate for the webhook's Service name and 127.0.0.1, readable by the injector only. */
  function makeTls(): { dir: string; cert: string } {
    const tls = join(dir, 'tls');
    execFileSync('mkdir', ['-p', tls]);
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=remora-injector.remora-system.svc',
        '-addext',
        'subjectAltName=DNS:remora-injector.remora-system.svc,IP:127.0.0.1',
        '-keyout',
        join(tls, 'tls.key'),
        '-out',
        join(tls, 'tls.crt'),
      ],
      { stdio: 'ignore' },
    );
    for (const f of ['tls.key', 'tls.crt']) chownSync(join(tls, f), INJECTOR_UID, INJECTOR_UID);
    return { dir: tls, cert: readFileSync(join(tls, 'tls.crt'), 'utf8') };
  }

  /** Starts the injector image on 127.0.0.1 (host network, port 0) and returns its webhook port. */
  async function startInjectorImage(
    role: string,
    tlsDir: string,
    meshYaml: string,
  ): Promise<{ name: string; port: number }> {
    const mesh = join(dir, `${role}-mesh.yaml`);
    writeFileSync(mesh, meshYaml, { mode: 0o644 });
    const n = name(role);
    await podmanOk([
      'run',
      '--detach',
      '--name',
      n,
      '--network',
      'host',
      '--user',
      `${INJECTOR_UID}:${INJECTOR_UID}`,
      ...LOCKED_DOWN,
      '--mount',
      'type=tmpfs,destination=/tmp',
      '--volume',
      `${tlsDir}:/etc/remora/tls:ro`,
      '--volume',
      `${mesh}:/etc/remora/mesh.yaml:ro`,
      '--env',
      'REMORA_INJECTOR_PORT=0',
      '--env',
      'REMORA_CA_PORT=0',
      INJECTOR_IMAGE,
      'node',
      '/app/injector/dist/bin/remora-injector.js',
      '--no-kubernetes',
      '--mesh-config',
      '/etc/remora/mesh.yaml',
      '--host',
      '127.0.0.1',
    ]);
    const logs = await eventually(
      `${role} listening`,
      async () => (await podman(['logs', n])).stdout,
      (out) => /"event":"started"/.test(out),
      30_000,
    );
    const started = logs
      .split('\n')
      .map((l) => (l.startsWith('{') ? (JSON.parse(l) as { event?: string; port?: number }) : {}))
      .find((l) => l.event === 'started');
    if (!started?.port) throw new Error(`no port in the injector's log:\n${logs}`);
    return { name: n, port: started.port };
  }

  function https(
    port: number,
    ca: string,
    path: string,
    body?: string,
  ): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path,
          method: body === undefined ? 'GET' : 'POST',
          ca,
          servername: 'remora-injector.remora-system.svc',
          headers: body === undefined ? {} : { 'content-type': 'application/json' },
          agent: false,
          timeout: 10_000,
        },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  it(
    'remora-injector, as 65532 on a read-only root with a mounted certificate, answers an AdmissionReview with the patch the sources compute',
    async () => {
      const fixture = parseYaml(
        readFileSync(join(REPO_ROOT, 'test/injector/fixtures/mesh-config.input.yaml'), 'utf8'),
      ) as { namespace: NamespaceInfo; meshConfig: string; pod: PodLike };
      const tls = makeTls();
      const inj = await startInjectorImage('injector', tls.dir, fixture.meshConfig);
      expect((await https(inj.port, tls.cert, '/readyz')).status).toBe(200);

      const uid = randomBytes(8).toString('hex');
      const review = {
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: {
          uid,
          kind: { group: '', version: 'v1', kind: 'Pod' },
          resource: { group: '', version: 'v1', resource: 'pods' },
          operation: 'CREATE',
          namespace: fixture.namespace.name,
          object: fixture.pod,
        },
      };
      const res = await https(inj.port, tls.cert, '/inject', JSON.stringify(review));
      expect(res.status).toBe(200);
      const answer = JSON.parse(res.text) as {
        kind: string;
        response: { uid: string; allowed: boolean; patchType?: string; patch?: string };
      };
      expect(answer.kind).toBe('AdmissionReview');
      expect(answer.response).toMatchObject({ uid, allowed: true, patchType: 'JSONPatch' });
      const patch: unknown = JSON.parse(Buffer.from(answer.response.patch ?? '', 'base64').toString());
      // Outside Kubernetes the injector counts every namespace as enabled, as the fixture's is.
      const expected = evaluate(fixture.pod, fixture.namespace, parseMeshConfig(fixture.meshConfig));
      expect(expected.result).toBe('injected');
      expect(patch).toEqual(expected.result === 'injected' ? expected.patch : undefined);
      expect(JSON.stringify(patch)).toContain('registry.local/remora/proxy:9.9.9');
    },
    CONTAINER_TEST_MS,
  );

  it(
    'remora-injector with a bad mounted mesh config says which field, and is not ready',
    async () => {
      const tls = makeTls();
      const inj = await startInjectorImage('injector-bad', tls.dir, 'proxyImage: "Not An Image"\n');
      const logs = await eventually(
        'mesh config rejected',
        async () => (await podman(['logs', inj.name])).stdout,
        (out) => /mesh_config_rejected/.test(out),
        15_000,
      );
      expect(logs).toMatch(/proxyImage/);
      expect((await https(inj.port, tls.cert, '/readyz')).status).not.toBe(200);
    },
    CONTAINER_TEST_MS,
  );
});
