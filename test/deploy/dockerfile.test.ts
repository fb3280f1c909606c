/**
 * Dockerfile.proxy and Dockerfile.injector, linted as text (no Docker engine runs here), plus the
 * facts that tie them to the rest of the tree: the commands they run are the packages' bins, the
 * ports are the contract's, the injector's UID and port are the Deployment's, and everything the
 * injector imports from @remora/proxy is in its image.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { INJECTOR, PORTS, PROXY_GID, PROXY_UID } from '../../proxy/src/contract.js';
import {
  copySources,
  dockerignoreMatcher,
  linkedBins,
  lintDockerfile,
  parseDockerfile,
  resolveArgs,
  rootBase,
} from './dockerfile-lint.js';
import type { ParsedDockerfile, Stage } from './dockerfile-lint.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (p: string): string => readFileSync(join(ROOT, p), 'utf8');
const DOCKERIGNORE = read('.dockerignore');
const context = { root: ROOT, dockerignore: DOCKERIGNORE };

/** Ports the sidecar serves to the pod's network; admin (15000) stays on loopback and is not exposed. */
const PROXY_EXPOSED = [PORTS.outbound, PORTS.inbound, PORTS.tunnel, PORTS.health, PORTS.metrics];

function stage(df: ParsedDockerfile, name: string): Stage {
  const s = df.stages.find((x) => x.name === name);
  if (!s) throw new Error(`no stage ${name}`);
  return s;
}
const runs = (s: Stage): string =>
  s.instructions
    .filter((i) => i.keyword === 'RUN')
    .map((i) => i.args)
    .join('\n');
const runtimeOf = (df: ParsedDockerfile): Stage => {
  const s = df.stages.at(-1);
  if (!s) throw new Error('no stage');
  return s;
};
/**
 * Every bin of a workspace package is on PATH in its image, executable, with a node shebang
 * (`#!/usr/bin/env -S node FLAGS` for one that starts with V8 flags: remora-proxy's).
 */
function expectBinsOnPath(df: ParsedDockerfile, pkgDir: string): void {
  const pkg = JSON.parse(read(`${pkgDir}/package.json`)) as { bin: Record<string, string> };
  const linked = linkedBins(runtimeOf(df));
  expect([...linked.keys()].sort()).toEqual(Object.keys(pkg.bin).sort());
  for (const [name, rel] of Object.entries(pkg.bin)) {
    expect(linked.get(name), name).toEqual({ target: binOf(pkgDir, name), executable: true });
    const src = rel.replace(/^dist\//, 'src/').replace(/\.js$/, '.ts');
    expect(read(`${pkgDir}/${src}`).split('\n')[0], `${pkgDir}/${src}`).toMatch(
      /^#!\/usr\/bin\/env (node|-S node( --[a-z0-9-]+(=[0-9]+)?)+)$/,
    );
  }
}

/**
 * `npm run images` passes its own base as NODE_IMAGE (images/build.sh); `docker build` without
 * it must still get the public image, and no stage may name another base.
 */
function expectPublicBaseByDefault(df: ParsedDockerfile): void {
  expect(df.preamble.map((i) => i.args)).toContain('NODE_IMAGE=node:24-bookworm-slim');
  const roots = new Set(df.stages.map((s) => rootBase(df, s)));
  expect([...roots]).toEqual(['${NODE_IMAGE}']);
  expect(read('images/build.sh')).toContain('--build-arg "NODE_IMAGE=$base"');
}

function binOf(pkgDir: string, name: string): string {
  const pkg = JSON.parse(read(`${pkgDir}/package.json`)) as { bin: Record<string, string> };
  const rel = pkg.bin[name];
  if (!rel) throw new Error(`${pkgDir}/package.json has no bin ${name}`);
  return `/app/${pkgDir}/${rel}`;
}

describe('Dockerfile parser', () => {
  it('joins continuations, drops comment lines inside them, reads flags, stages and exec form', () => {
    const df = parseDockerfile(
      [
        '# syntax=docker/dockerfile:1',
        'ARG X=1',
        'FROM node:24-bookworm-slim AS Build',
        'RUN a \\',
        '  # a comment inside the continuation',
        '',
        '  && b',
        'FROM build',
        'COPY --from=build --chown=1:1 /a /b',
        'CMD ["node", "x.js"]',
      ].join('\n'),
    );
    expect(df.preamble.map((i) => i.keyword)).toEqual(['ARG']);
    expect(df.stages.map((s) => [s.name, s.base, s.line])).toEqual([
      ['build', 'node:24-bookworm-slim', 3],
      [undefined, 'build', 8],
    ]);
    const [, run] = df.stages[0]?.instructions ?? [];
    expect(run).toMatchObject({ keyword: 'RUN', args: 'a && b', line: 4 });
    const [, copy, cmd] = df.stages[1]?.instructions ?? [];
    expect(linkedBins(df.stages[0] as Stage).size).toBe(0);
    expect(copy?.flags).toEqual({ from: 'build', chown: '1:1' });
    expect(copy && copySources(copy)).toEqual(['/a']);
    expect(cmd?.exec).toEqual(['node', 'x.js']);
    expect(rootBase(df, df.stages[1] as Stage)).toBe('node:24-bookworm-slim');
  });

  it('honours the escape directive', () => {
    const df = parseDockerfile('# escape=`\nFROM debian:12\nRUN echo a `\n  b\n');
    expect(df.stages[0]?.instructions[1]?.args).toBe('echo a b');
  });

  it('.dockerignore matcher: globs, ** and parent directories, ! re-includes', () => {
    const ignored = dockerignoreMatcher('**/node_modules\n*.md\ndocs\n!docs/keep.txt\n/build\n');
    expect(ignored('proxy/node_modules/x')).toBe(true);
    expect(ignored('node_modules')).toBe(true);
    expect(ignored('README.md')).toBe(true);
    expect(ignored('proxy/README.md')).toBe(false);
    expect(ignored('docs/a.txt')).toBe(true);
    expect(ignored('docs/keep.txt')).toBe(false);
    expect(ignored('build/x')).toBe(true);
    expect(ignored('proxy/src/index.ts')).toBe(false);
  });
});

describe('Dockerfile linter, bad input', () => {
  it('reports every broken rule of a deliberately bad Dockerfile, by rule and line', () => {
    const bad = [
      'FROM node:latest AS build', // 1
      'RUN npm install', // 2
      'RUN apt-get install -y curl', // 3
      'ADD https://example.invalid/tool.tgz /opt/', // 4
      'COPY no/such/file /app/', // 5
      'COPY README.md /app/', // 6
      'FROM debian', // 7
      'COPY --from=builder /app /app', // 8
      'EXPOSE 15001', // 9
      'CMD node server.js', // 10
      'USER app', // 11
    ].join('\n');
    const issues = lintDockerfile(bad, { user: PROXY_UID, tini: true, ports: PROXY_EXPOSED, context });
    const got = issues.map((i) => `${i.rule}@${i.line}`);
    expect(got).toEqual(
      expect.arrayContaining([
        'base-pinned@1',
        'npm-ci@2',
        'apt@3',
        'add-url@4',
        'copy-source@5',
        'copy-source@6',
        'base-pinned@7',
        'copy-from@8',
        'exec-form@10',
        'user@11',
        'tini@7',
        'expose@7',
      ]),
    );
    const text = issues.map((i) => i.message).join('\n');
    for (const message of [
      'FROM node:latest: base image pinned to "latest"',
      'FROM debian: base image has no tag or digest',
      'RUN npm install: use `npm ci`',
      'apt-get install without --no-install-recommends',
      'apt-get install without rm -rf /var/lib/apt/lists/*',
      'ADD https://example.invalid/tool.tgz: remote sources',
      'COPY no/such/file: not in the build context',
      'COPY README.md: excluded by .dockerignore',
      'COPY --from=builder: no earlier stage of that name',
      'USER app: must be numeric',
      'USER comes after CMD/ENTRYPOINT',
      'port 15006 is not EXPOSEd',
    ])
      expect(text).toContain(message);
    expect(issues.filter((i) => i.rule === 'expose')).toHaveLength(PROXY_EXPOSED.length - 1);
  });

  it('checks a FROM build ARG through its default; one without a default, or defaulting to latest, is refused', () => {
    const opts = { user: 'non-root' as const };
    const pinning = (text: string) => lintDockerfile(text, opts).filter((x) => x.rule === 'base-pinned');
    const tail = 'FROM build\nUSER 1\nCMD ["node", "a.js"]\n';
    expect(pinning(`ARG BASE=node:24-bookworm-slim\nFROM \${BASE} AS build\n${tail}`)).toEqual([]);
    expect(pinning(`ARG BASE\nFROM $BASE AS build\n${tail}`)).toEqual([
      {
        rule: 'base-pinned',
        line: 2,
        message: 'FROM $BASE: image from a build ARG without a default cannot be checked',
      },
    ]);
    expect(pinning(`ARG BASE=node:latest\nFROM \${BASE} AS build\n${tail}`).map((i) => i.message)).toEqual([
      'FROM ${BASE}: base image pinned to "latest"',
    ]);
    expect(
      resolveArgs('${A}/x:$B', parseDockerfile('ARG A="reg.example"\nARG B=1\nFROM scratch\n').preamble),
    ).toBe('reg.example/x:1');
  });

  it('a single-stage Dockerfile running as root is refused', () => {
    const issues = lintDockerfile('FROM node:24-bookworm-slim\nRUN npm ci\nUSER 0\nCMD ["node", "a.js"]\n', {
      user: 'non-root',
    });
    expect(issues.map((i) => i.rule).sort()).toEqual(['multi-stage', 'user']);
    expect(issues.map((i) => i.message)).toContain('USER is root');
  });

  it('a file with no FROM is refused, and a non-instruction line throws with its line number', () => {
    expect(lintDockerfile('# nothing\n', { user: 'non-root' })).toEqual([
      { rule: 'no-stage', line: 1, message: 'no FROM instruction' },
    ]);
    expect(() => parseDockerfile('FROM debian:12\n{"not": "docker"}\n')).toThrow(
      /line 2: not an instruction/,
    );
  });
});

describe('Dockerfile.proxy', () => {
  const text = read('Dockerfile.proxy');
  const df = parseDockerfile(text);

  it('passes the linter: pinned bases, multi-stage, USER 1337 before CMD, tini, npm ci, tidy apt, contract ports', () => {
    expect(lintDockerfile(text, { user: PROXY_UID, tini: true, ports: PROXY_EXPOSED, context })).toEqual([]);
    const user = runtimeOf(df)
      .instructions.filter((i) => i.keyword === 'USER')
      .at(-1);
    expect(user?.args).toBe(`${PROXY_UID}:${PROXY_GID}`);
  });

  it('builds every stage on the NODE_IMAGE build argument, whose default is the public node:24-bookworm-slim', () => {
    expectPublicBaseByDefault(df);
  });

  it('runs the remora-proxy bin under tini (by name, as the injector does: its shebang has the V8 flags), and the remora-init bin it documents exists in the package', () => {
    const rt = runtimeOf(df).instructions;
    expect(rt.find((i) => i.keyword === 'ENTRYPOINT')?.exec).toEqual(['/usr/bin/tini', '--']);
    expect(rt.find((i) => i.keyword === 'CMD')?.exec).toEqual(['remora-proxy']);
    expect(linkedBins(runtimeOf(df)).get('remora-proxy')).toEqual({
      target: binOf('proxy', 'remora-proxy'),
      executable: true,
    });
    expect(text).toContain(`command: ["node", "${binOf('proxy', 'remora-init')}"]`);
    expect(statSync(join(ROOT, 'proxy/src/bin/remora-init.ts')).isFile()).toBe(true);
  });

  it('puts remora-proxy and remora-init on PATH, executable (pod specs may name them bare)', () => {
    expectBinsOnPath(df, 'proxy');
  });

  it('builds the addon with python3, make and g++ against the same base image the runtime loads it in', () => {
    const rt = runtimeOf(df);
    expect(runs(rt)).toMatch(/apt-get install -y --no-install-recommends iptables tini/);
    // The runtime carries no compiler.
    expect(runs(rt)).not.toMatch(/\b(g\+\+|make|python3)\b/);
    const addonCopy = rt.instructions.find((i) => i.keyword === 'COPY' && /\.node\b/.test(i.args));
    const from = addonCopy?.flags['from'];
    expect(from).toBeDefined();
    const src = stage(df, from ?? '');
    expect(rootBase(df, src)).toBe(rootBase(df, rt));
    expect(runs(stage(df, 'toolchain'))).toMatch(/--no-install-recommends python3 make g\+\+/);
    // The addon sources reach the build (binding.gyp lists them) and its local build dir does not.
    const native = 'proxy/native';
    const gyp = JSON.parse(read(`${native}/binding.gyp`)) as { targets: { sources: string[] }[] };
    const ignored = dockerignoreMatcher(DOCKERIGNORE);
    for (const f of ['binding.gyp', ...gyp.targets.flatMap((t) => t.sources)]) {
      expect(ignored(`${native}/${f}`), f).toBe(false);
      expect(statSync(join(ROOT, native, f)).isFile(), f).toBe(true);
    }
    expect(ignored(`${native}/build/Release/origdst.node`)).toBe(true);
  });

  it('installs production dependencies of the proxy workspace only, and compiles with tsc -b proxy', () => {
    expect(runs(stage(df, 'deps'))).toMatch(/npm ci .*--omit=dev -w proxy/);
    expect(runs(stage(df, 'build'))).toMatch(/npm ci .*-w proxy/);
    expect(runs(stage(df, 'build'))).toMatch(/tsc -b proxy$/m);
    const fromDeps = runtimeOf(df).instructions.filter((i) => i.flags['from'] === 'deps');
    expect(fromDeps.map((i) => copySources(i)[0])).toContain('/app/node_modules');
  });
});

/**
 * Every compiled proxy module the injector needs at run time: the `@remora/proxy[/sub]` entries
 * its sources import, resolved through proxy/package.json's exports, plus what those import
 * relatively (test/global-setup.ts has built proxy/dist). A bare import among them would need
 * the proxy's dependencies, which the injector image does not install.
 */
function proxyModulesNeededByInjector(): { files: string[]; bare: string[] } {
  const pkg = JSON.parse(read('proxy/package.json')) as { exports: Record<string, { default: string }> };
  const files = new Set<string>();
  const bare = new Set<string>();
  const follow = (file: string): void => {
    if (files.has(file)) return;
    files.add(file);
    for (const m of read(file).matchAll(/(?:^|;|\n)\s*(?:import|export)\b[^'"]*?from\s*['"]([^'"]+)['"]/g)) {
      const spec = m[1] ?? '';
      if (spec.startsWith('.')) follow(posix.join(posix.dirname(file), spec));
      else if (!spec.startsWith('node:'))
        bare.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : (spec.split('/')[0] ?? spec));
    }
  };
  const walk = (dir: string): void => {
    for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory()) walk(p);
      else if (p.endsWith('.ts'))
        for (const m of read(p).matchAll(/from\s+'@remora\/proxy(\/[^']*)?'/g)) {
          const target = pkg.exports[`.${m[1] ?? ''}`]?.default;
          if (!target)
            throw new Error(
              `${p} imports @remora/proxy${m[1] ?? ''}, which proxy/package.json does not export`,
            );
          follow(`proxy/${posix.normalize(target)}`);
        }
    }
  };
  walk('injector/src');
  return { files: [...files].sort(), bare: [...bare] };
}

describe('Dockerfile.injector', () => {
  const text = read('Dockerfile.injector');
  const df = parseDockerfile(text);
  const deployment = parseAllDocuments(read('deploy/base/deployment.yaml'))[0]?.toJS() as {
    spec: {
      template: {
        spec: {
          containers: {
            ports: { containerPort: number }[];
            securityContext: { runAsUser: number; runAsGroup: number };
          }[];
        };
      };
    };
  };
  const container = deployment.spec.template.spec.containers[0];

  it('passes the linter with the Deployment runAsUser as its numeric USER, before CMD, tini, npm ci', () => {
    expect(container).toBeDefined();
    const uid = container?.securityContext.runAsUser ?? -1;
    expect(uid).toBeGreaterThan(0);
    expect(
      lintDockerfile(text, { user: uid, tini: true, ports: [INJECTOR.port, INJECTOR.caPort], context }),
    ).toEqual([]);
    const user = runtimeOf(df)
      .instructions.filter((i) => i.keyword === 'USER')
      .at(-1);
    expect(user?.args).toBe(`${uid}:${container?.securityContext.runAsGroup}`);
    expect(container?.ports[0]?.containerPort).toBe(INJECTOR.port);
  });

  it('builds every stage on the NODE_IMAGE build argument, whose default is the public node:24-bookworm-slim', () => {
    expectPublicBaseByDefault(df);
  });

  it('runs the remora-injector bin, and has remora-injector and remora on PATH', () => {
    const cmd = runtimeOf(df).instructions.find((i) => i.keyword === 'CMD');
    expect(cmd?.exec).toEqual(['node', binOf('injector', 'remora-injector')]);
    expectBinsOnPath(df, 'injector');
  });

  it('carries the compiled proxy package whole, so every @remora/proxy module the injector imports, and links the package', () => {
    const copied = runtimeOf(df)
      .instructions.filter((i) => i.keyword === 'COPY' && i.flags['from'] === 'build')
      .flatMap((i) => copySources(i).map((s) => s.replace(/^\/app\//, '')));
    const needed = proxyModulesNeededByInjector();
    expect(needed.files).toContain('proxy/dist/contract.js');
    expect(needed.files).toContain('proxy/dist/values.js');
    // The compiled proxy package is copied whole: no hand list of its files to fall behind
    // what injector/src imports (issue 16).
    expect(copied.filter((c) => c.startsWith('proxy/'))).toEqual(['proxy/dist']);
    // Packages those modules import must come from the injector's own production dependencies
    // (the deps stage installs only those), never from the proxy's.
    const injectorDeps = Object.keys(
      (JSON.parse(read('injector/package.json')) as { dependencies: Record<string, string> }).dependencies,
    );
    for (const b of needed.bare)
      expect(injectorDeps, `a proxy module in the injector image imports ${b}`).toContain(b);
    for (const mod of needed.files)
      expect(
        copied.some((c) => mod === c || mod.startsWith(`${c}/`)),
        `${mod} is imported by injector/src but not copied into the image`,
      ).toBe(true);
    expect(runs(stage(df, 'deps'))).toContain('ln -s ../../proxy node_modules/@remora/proxy');
    expect(runs(stage(df, 'deps'))).toMatch(/npm ci .*--omit=dev -w injector/);
  });
});
