/**
 * A small Dockerfile parser and linter for the tests: no Docker engine runs here, so the images'
 * recipes are checked as text against the rules that matter for Remora's images (pinned bases,
 * multi-stage, a numeric non-root USER before the command, tini, npm ci, tidy apt layers, no
 * remote ADD, COPY sources that exist and are not excluded by .dockerignore).
 *
 * The parser follows the Dockerfile reference where our files need it: parser directives
 * (`# escape=`), comment lines (also inside continuations), line continuations with the escape
 * character, exec (JSON) and shell forms, `--flag=value` options, stages named with `AS`.
 * Heredocs are not supported: the linter reports them instead of misreading them.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join, posix } from 'node:path';

export interface Instruction {
  /** Upper-cased keyword: FROM, RUN, COPY, ... */
  readonly keyword: string;
  /** Arguments after the keyword and its `--flags`, continuations joined with a space. */
  readonly args: string;
  /** `--name=value` options (`--from`, `--chown`, `--platform`, ...). */
  readonly flags: Readonly<Record<string, string>>;
  /** The exec form's array when the arguments are a JSON array of strings. */
  readonly exec?: readonly string[];
  /** 1-based line of the keyword. */
  readonly line: number;
}

export interface Stage {
  readonly index: number;
  readonly name?: string;
  /** The FROM image (or the name of an earlier stage). */
  readonly base: string;
  readonly line: number;
  readonly instructions: readonly Instruction[];
}

export interface ParsedDockerfile {
  readonly stages: readonly Stage[];
  /** Instructions before the first FROM (only ARG is legal there). */
  readonly preamble: readonly Instruction[];
}

export interface LintIssue {
  readonly rule: string;
  readonly line: number;
  readonly message: string;
}

const FLAG = /^--([a-z][a-z-]*)(?:=(\S*))?$/;

/** Splits on whitespace, keeping single- or double-quoted parts together (quotes removed). */
export function splitWords(s: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
  for (const m of s.matchAll(re)) out.push(m[1] ?? m[2] ?? m[3] ?? '');
  return out;
}

function parseExec(args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined;
  try {
    const v: unknown = JSON.parse(args);
    return Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined;
  } catch {
    return undefined;
  }
}

/** Parses Dockerfile text into stages of instructions. Throws on text that is not a Dockerfile. */
export function parseDockerfile(text: string): ParsedDockerfile {
  const lines = text.split(/\r?\n/);
  let escape = '\\';
  // Parser directives: only at the very top, before any comment, blank line or instruction.
  for (const l of lines) {
    const m = /^#\s*([a-z]+)\s*=\s*(\S+)\s*$/i.exec(l);
    if (!m) break;
    if (m[1]?.toLowerCase() === 'escape' && (m[2] === '`' || m[2] === '\\')) escape = m[2];
  }

  const logical: { text: string; line: number }[] = [];
  let buf: string | undefined;
  let start = 0;
  lines.forEach((raw, i) => {
    const trimmed = raw.trim();
    // Comment lines are removed before continuations are joined, also in the middle of one.
    if (trimmed.startsWith('#')) return;
    if (buf === undefined) {
      if (trimmed === '') return;
      buf = '';
      start = i + 1;
    } else if (trimmed === '') {
      return; // blank lines inside a continuation are skipped too
    }
    const continued = trimmed.endsWith(escape);
    buf += (buf === '' ? '' : ' ') + (continued ? trimmed.slice(0, -1).trim() : trimmed);
    if (!continued) {
      logical.push({ text: buf, line: start });
      buf = undefined;
    }
  });
  if (buf !== undefined) logical.push({ text: buf, line: start });

  const preamble: Instruction[] = [];
  const stages: { index: number; name?: string; base: string; line: number; instructions: Instruction[] }[] =
    [];
  for (const { text: l, line } of logical) {
    const m = /^(\S+)\s*(.*)$/.exec(l);
    if (!m?.[1]) continue;
    const keyword = m[1].toUpperCase();
    if (!/^[A-Z]+$/.test(keyword)) throw new Error(`line ${line}: not an instruction: ${m[1]}`);
    let rest = m[2] ?? '';
    const flags: Record<string, string> = {};
    for (;;) {
      const f = /^(\S+)\s*(.*)$/.exec(rest);
      const fm = f?.[1] ? FLAG.exec(f[1]) : null;
      if (!fm?.[1]) break;
      flags[fm[1]] = fm[2] ?? 'true';
      rest = f?.[2] ?? '';
    }
    const exec = parseExec(rest);
    const ins: Instruction = exec
      ? { keyword, args: rest, flags, exec, line }
      : { keyword, args: rest, flags, line };
    if (keyword === 'FROM') {
      const words = splitWords(rest);
      const base = words[0];
      if (!base) throw new Error(`line ${line}: FROM without an image`);
      const asAt = words.findIndex((w) => w.toUpperCase() === 'AS');
      const name = asAt >= 0 ? words[asAt + 1]?.toLowerCase() : undefined;
      stages.push({ index: stages.length, ...(name ? { name } : {}), base, line, instructions: [ins] });
    } else {
      const cur = stages.at(-1);
      if (cur) cur.instructions.push(ins);
      else preamble.push(ins);
    }
  }
  return { stages, preamble };
}

/** `.dockerignore` as Docker applies it: glob patterns on context-relative paths, `!` re-includes. */
export function dockerignoreMatcher(text: string): (path: string) => boolean {
  const rules = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pat = posix.normalize((negate ? l.slice(1) : l).replace(/^\/+/, ''));
      let re = '';
      for (let i = 0; i < pat.length; i++) {
        const c = pat.charAt(i);
        if (c === '*' && pat[i + 1] === '*') {
          // `**/` matches any number of directories, including none.
          re += pat[i + 2] === '/' ? '(?:.*/)?' : '.*';
          i += pat[i + 2] === '/' ? 2 : 1;
        } else if (c === '*') re += '[^/]*';
        else if (c === '?') re += '[^/]';
        else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
      }
      return { negate, re: new RegExp(`^${re}$`) };
    });
  return (path: string) => {
    const p = posix.normalize(path.replace(/^\.\//, ''));
    const parts = p.split('/');
    // A path is excluded when it or any of its parent directories matches the last rule that
    // matches it.
    let excluded = false;
    for (let n = 1; n <= parts.length; n++) {
      const prefix = parts.slice(0, n).join('/');
      for (const r of rules) if (r.re.test(prefix)) excluded = !r.negate;
    }
    return excluded;
  };
}

export interface LintOptions {
  /** The runtime (last) stage's USER: an exact numeric UID, or any non-root numeric UID. */
  readonly user: number | 'non-root';
  /** The runtime's ENTRYPOINT must be tini (`["/usr/bin/tini", "--"]`). */
  readonly tini?: boolean;
  /** Ports the runtime stage must EXPOSE. */
  readonly ports?: readonly number[];
  /** Build context: COPY sources must exist there and not be excluded by its .dockerignore. */
  readonly context?: { readonly root: string; readonly dockerignore?: string };
}

function isUrl(s: string): boolean {
  return /^(https?|git|ssh):\/\//i.test(s) || /^git@/.test(s);
}

/** Sources of a COPY/ADD: every argument but the destination. */
export function copySources(ins: Instruction): string[] {
  const words = ins.exec ? [...ins.exec] : splitWords(ins.args);
  return words.slice(0, -1);
}

function globExists(root: string, src: string): boolean {
  if (!/[*?[]/.test(src)) return existsSync(join(root, src));
  const dir = posix.dirname(src);
  const re = new RegExp(
    `^${posix
      .basename(src)
      .replace(/[.+^${}()|\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  );
  return existsSync(join(root, dir)) && readdirSync(join(root, dir)).some((f) => re.test(f));
}

/** Lints a Dockerfile; returns every issue found (an empty list means it passes). */
export function lintDockerfile(text: string, opts: LintOptions): LintIssue[] {
  const issues: LintIssue[] = [];
  const add = (rule: string, line: number, message: string): void => {
    issues.push({ rule, line, message });
  };
  const df = parseDockerfile(text);
  const { stages } = df;
  if (stages.length === 0) {
    add('no-stage', 1, 'no FROM instruction');
    return issues;
  }
  const stageNames = new Map<string, number>();
  for (const ins of df.preamble)
    if (ins.keyword !== 'ARG') add('preamble', ins.line, `${ins.keyword} before the first FROM`);

  for (const st of stages) {
    const fromStage = stageNames.get(st.base.toLowerCase());
    if (fromStage === undefined) {
      // An external image: pinned to a tag or digest, never `latest`. A build ARG is checked
      // through its default (the image `docker build` uses when nobody passes one).
      const base = resolveArgs(st.base, df.preamble);
      const [, tag] = /^[^@]*?(?::([^/:@]+))?(?:@sha256:[0-9a-f]{64})?$/.exec(base) ?? [];
      if (base.includes('$'))
        add(
          'base-pinned',
          st.line,
          `FROM ${st.base}: image from a build ARG without a default cannot be checked`,
        );
      else if (!base.includes('@sha256:') && tag === undefined)
        add('base-pinned', st.line, `FROM ${st.base}: base image has no tag or digest`);
      else if (tag === 'latest')
        add('base-pinned', st.line, `FROM ${st.base}: base image pinned to "latest"`);
    }
    if (st.name !== undefined) {
      if (stageNames.has(st.name)) add('stage-name', st.line, `stage name "${st.name}" used twice`);
      stageNames.set(st.name, st.index);
    }

    for (const ins of st.instructions) {
      if (ins.keyword === 'COPY' || ins.keyword === 'ADD') {
        const from = ins.flags['from'];
        if (from !== undefined) {
          const byName = stageNames.get(from.toLowerCase());
          const byIndex = /^\d+$/.test(from) ? Number(from) : undefined;
          const ok =
            (byName !== undefined && byName < st.index) || (byIndex !== undefined && byIndex < st.index);
          if (!ok) add('copy-from', ins.line, `COPY --from=${from}: no earlier stage of that name`);
        }
        const srcs = copySources(ins);
        if (srcs.length === 0) add('copy-args', ins.line, `${ins.keyword} needs a source and a destination`);
        for (const src of srcs) {
          if (ins.keyword === 'ADD' && isUrl(src))
            add(
              'add-url',
              ins.line,
              `ADD ${src}: remote sources are unpinned and unverified; download in a RUN with a checksum, or COPY`,
            );
          if (from !== undefined || !opts.context || isUrl(src)) continue;
          if (!globExists(opts.context.root, src))
            add('copy-source', ins.line, `${ins.keyword} ${src}: not in the build context`);
          else if (
            opts.context.dockerignore !== undefined &&
            dockerignoreMatcher(opts.context.dockerignore)(src)
          )
            add('copy-source', ins.line, `${ins.keyword} ${src}: excluded by .dockerignore`);
        }
      }
      if (ins.keyword === 'RUN') {
        const cmd = ins.exec ? ins.exec.join(' ') : ins.args;
        if (/<<-?\s*['"]?[A-Za-z_]/.test(cmd))
          add('heredoc', ins.line, 'heredocs are not supported by this linter');
        if (/\bnpm\s+(install|i|add)\b/.test(cmd))
          add('npm-ci', ins.line, 'RUN npm install: use `npm ci` (lockfile-exact, fails on drift)');
        if (/\bapt-get\s+(-\S+\s+)*install\b/.test(cmd)) {
          if (!/--no-install-recommends\b/.test(cmd))
            add('apt', ins.line, 'apt-get install without --no-install-recommends');
          if (!/\bapt-get\s+(-\S+\s+)*update\b/.test(cmd))
            add(
              'apt',
              ins.line,
              'apt-get install without apt-get update in the same RUN (stale cached index)',
            );
          if (!/\brm\s+-(rf|fr)\s+\/var\/lib\/apt\/lists/.test(cmd))
            add('apt', ins.line, 'apt-get install without rm -rf /var/lib/apt/lists/* in the same RUN');
        }
      }
    }
  }

  if (stages.length < 2) add('multi-stage', 1, 'single stage: build tools would ship in the image');
  if (!stages.some((s) => s.instructions.some((i) => i.keyword === 'RUN' && /\bnpm\s+ci\b/.test(i.args))))
    add('npm-ci', 1, 'no stage runs `npm ci`');

  const runtime = stages.at(-1);
  if (!runtime) return issues;
  const rt = runtime.instructions;
  if (stages.length >= 2 && !rt.some((i) => i.keyword === 'COPY' && i.flags['from'] !== undefined))
    add('multi-stage', runtime.line, 'the runtime stage copies nothing from a build stage');

  const users = rt.filter((i) => i.keyword === 'USER');
  const lastUser = users.at(-1);
  const cmdAt = rt.findIndex((i) => i.keyword === 'CMD' || i.keyword === 'ENTRYPOINT');
  if (!lastUser) add('user', runtime.line, 'the runtime stage sets no USER (it would run as root)');
  else {
    const [uid, gid] = lastUser.args.trim().split(':');
    if (!/^\d+$/.test(uid ?? '') || (gid !== undefined && !/^\d+$/.test(gid)))
      add('user', lastUser.line, `USER ${lastUser.args}: must be numeric so that runAsNonRoot can verify it`);
    else if (Number(uid) === 0) add('user', lastUser.line, 'USER is root');
    else if (opts.user !== 'non-root' && Number(uid) !== opts.user)
      add('user', lastUser.line, `USER ${lastUser.args}: expected UID ${opts.user}`);
    if (cmdAt >= 0 && rt.indexOf(lastUser) > cmdAt)
      add('user', lastUser.line, 'USER comes after CMD/ENTRYPOINT: set it before the command');
  }
  const cmd = rt.filter((i) => i.keyword === 'CMD').at(-1);
  const entry = rt.filter((i) => i.keyword === 'ENTRYPOINT').at(-1);
  if (!cmd && !entry) add('cmd', runtime.line, 'the runtime stage has no CMD or ENTRYPOINT');
  for (const i of [cmd, entry])
    if (i && !i.exec)
      add(
        'exec-form',
        i.line,
        `${i.keyword} in shell form: signals go to /bin/sh, not the process; use the JSON form`,
      );
  if (opts.tini) {
    const e = entry?.exec;
    if (!e || !/(^|\/)tini$/.test(e[0] ?? '') || e[1] !== '--')
      add('tini', entry?.line ?? runtime.line, 'ENTRYPOINT must be ["/usr/bin/tini", "--"]');
  }
  if (opts.ports) {
    const exposed = new Set(
      rt
        .filter((i) => i.keyword === 'EXPOSE')
        .flatMap((i) => splitWords(i.args).map((p) => Number(p.split('/')[0]))),
    );
    for (const p of opts.ports) if (!exposed.has(p)) add('expose', runtime.line, `port ${p} is not EXPOSEd`);
  }
  return issues;
}

/**
 * `$NAME` and `${NAME}` in a FROM, replaced by the default of the ARG before the first FROM
 * (`ARG NAME=value`); an ARG without a default, or an unknown name, stays as written.
 */
export function resolveArgs(text: string, preamble: readonly Instruction[]): string {
  const defaults = new Map<string, string>();
  for (const ins of preamble) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(\S+)$/.exec(ins.keyword === 'ARG' ? ins.args.trim() : '');
    if (m?.[1] && m[2] !== undefined) defaults.set(m[1], m[2].replace(/^(["'])(.*)\1$/, '$2'));
  }
  return text.replace(
    /\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (all, a?: string, b?: string) => {
      const v = defaults.get(a ?? b ?? '');
      return v ?? all;
    },
  );
}

/** The external base image a stage finally builds on (following `FROM <earlier stage>`). */
export function rootBase(df: ParsedDockerfile, stage: Stage): string {
  let cur: Stage | undefined = stage;
  const seen = new Set<number>();
  while (cur && !seen.has(cur.index)) {
    seen.add(cur.index);
    const base: string = cur.base.toLowerCase();
    const next: Stage | undefined = df.stages.find((s) => s.name === base && s.index < (cur?.index ?? 0));
    if (!next) return cur.base;
    cur = next;
  }
  return stage.base;
}

/**
 * Commands a stage puts on PATH: `ln -s <target> /usr/local/bin/<name>` in its RUNs, with whether
 * the target was made executable (`chmod` naming it, relative to WORKDIR /app).
 */
export function linkedBins(stage: Stage): Map<string, { target: string; executable: boolean }> {
  const runs = stage.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);
  const chmodded = new Set(
    runs.flatMap((r) =>
      [...r.matchAll(/\bchmod\s+\S+((?:\s+[^\s&;|]+)+)/g)].flatMap((m) =>
        splitWords(m[1] ?? '').map((f) => (f.startsWith('/') ? f : `/app/${f}`)),
      ),
    ),
  );
  const out = new Map<string, { target: string; executable: boolean }>();
  for (const r of runs)
    for (const m of r.matchAll(/\bln\s+-s\s+(\S+)\s+\/usr\/local\/bin\/([\w.-]+)/g))
      if (m[1] && m[2]) out.set(m[2], { target: m[1], executable: chmodded.has(m[1]) });
  return out;
}
