/**
 * `remora-proxy admin COMMAND`: the admin API from inside the pod, for images without curl
 * (`kubectl exec POD -c remora-proxy -- remora-proxy admin config`). It reads the same
 * environment the supervisor was started with (admin port, bind host, token file), so it finds
 * the supervisor's admin listener and token without flags.
 */
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { ADMIN_PATHS, ENV, POD_PATHS, PORTS } from '../contract.js';
import { parsePort } from '../values.js';

export const ADMIN_USAGE = `usage: remora-proxy admin COMMAND

commands (the supervisor's admin API on 127.0.0.1:$REMORA_ADMIN_PORT, default ${PORTS.admin}):
  config                 GET /config: the effective configuration and state, as JSON
  upgrade [--version V]  POST /upgrade: replace the engine in place (new config or version)
  drain                  POST /drain: stop accepting, finish in-flight work
  logging [LEVEL]        GET or POST /logging: show or set the log level
The bearer token is read from $REMORA_ADMIN_TOKEN_FILE (default ${POD_PATHS.adminTokenFile}).
Exit: 0 the proxy answered 2xx (its answer on stdout), 1 it answered otherwise or could not be
reached (the reason on stderr), 2 usage.
`;

export interface AdminCall {
  method: 'GET' | 'POST';
  path: string;
  body?: string;
  /** Whether the call needs the bearer token. */
  auth: boolean;
}

/** The HTTP call a command line means, or a usage error. Pure. */
export function adminCall(args: readonly string[]): AdminCall | string {
  const [cmd, ...rest] = args;
  switch (cmd) {
    case 'config':
      return rest.length === 0
        ? { method: 'GET', path: ADMIN_PATHS.config, auth: false }
        : 'config takes no arguments';
    case 'drain':
      return rest.length === 0
        ? { method: 'POST', path: ADMIN_PATHS.drain, auth: true }
        : 'drain takes no arguments';
    case 'upgrade': {
      if (rest.length === 0) return { method: 'POST', path: ADMIN_PATHS.upgrade, auth: true };
      const [flag, value, ...more] = rest;
      const inline = flag?.startsWith('--version=') ? flag.slice('--version='.length) : undefined;
      const version = inline ?? (flag === '--version' ? value : undefined);
      if (
        version === undefined ||
        version === '' ||
        more.length > 0 ||
        (inline !== undefined && value !== undefined)
      )
        return 'upgrade takes only --version V';
      return { method: 'POST', path: ADMIN_PATHS.upgrade, auth: true, body: JSON.stringify({ version }) };
    }
    case 'logging':
      if (rest.length === 0) return { method: 'GET', path: ADMIN_PATHS.logging, auth: false };
      if (rest.length === 1 && /^[a-z]+$/.test(rest[0] as string))
        return { method: 'POST', path: `${ADMIN_PATHS.logging}?level=${rest[0] as string}`, auth: true };
      return 'logging takes one LEVEL';
    case undefined:
      return 'a command is required';
    default:
      return `unknown command ${JSON.stringify(cmd)}`;
  }
}

export interface AdminIo {
  env: NodeJS.ProcessEnv;
  stdout(text: string): void;
  stderr(text: string): void;
  readFile(path: string): string;
}

// The process environment is read here, as the supervisor's own config parser reads it: this
// client is a second entry point of the same binary, run beside the supervisor in its container.
const nodeIo: AdminIo = {
  env: process.env,
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  readFile: (p) => readFileSync(p, 'utf8'),
};

export async function runAdmin(args: readonly string[], io: AdminIo = nodeIo): Promise<number> {
  if (args[0] === '--help' || args[0] === '-h' || args[0] === 'help') {
    io.stdout(ADMIN_USAGE);
    return 0;
  }
  const call = adminCall(args);
  if (typeof call === 'string') {
    io.stderr(`remora-proxy admin: ${call}\n${ADMIN_USAGE}`);
    return 2;
  }
  const portText = io.env[ENV.adminPort];
  const parsed = portText === undefined || portText === '' ? undefined : parsePort(portText.trim());
  const port = parsed === undefined ? PORTS.admin : parsed.ok ? parsed.value : NaN;
  if (parsed?.ok === false) {
    io.stderr(`remora-proxy admin: ${ENV.adminPort}=${JSON.stringify(portText)} is not a port\n`);
    return 1;
  }
  const bind = io.env[ENV.bindHost];
  const host =
    bind === undefined || bind === '' || bind === '0.0.0.0' ? '127.0.0.1' : bind === '::' ? '::1' : bind;
  const headers: Record<string, string> = {};
  if (call.auth) {
    const file = io.env[ENV.adminTokenFile] || POD_PATHS.adminTokenFile;
    try {
      headers.authorization = `Bearer ${io.readFile(file).trim()}`;
    } catch (err) {
      io.stderr(`remora-proxy admin: cannot read the admin token ${file}: ${(err as Error).message}\n`);
      return 1;
    }
  }
  if (call.body !== undefined) headers['content-type'] = 'application/json';
  return new Promise((resolve) => {
    const req = http.request(
      { host, port, method: call.method, path: call.path, headers, timeout: 120_000 },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          const ok = (res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300;
          const out = text.endsWith('\n') || text === '' ? text : `${text}\n`;
          if (ok) io.stdout(out);
          else
            io.stderr(
              `remora-proxy admin: ${call.method} ${call.path}: HTTP ${res.statusCode ?? '?'}\n${out}`,
            );
          resolve(ok ? 0 : 1);
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer within 120 s')));
    req.on('error', (err) => {
      io.stderr(`remora-proxy admin: ${call.method} http://${host}:${port}${call.path}: ${err.message}\n`);
      resolve(1);
    });
    req.end(call.body);
  });
}
