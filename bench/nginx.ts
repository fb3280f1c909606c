/**
 * The reference nginx setup (the project's `bench/README`, `nginx-reference.conf`): one nginx,
 * one worker, serving both the backend (a fixed 12-byte body, so the proxy under test is the
 * bottleneck) and nginx-as-a-proxy with upstream keep-alive. Kept verbatim apart from the
 * placeholders; render() only fills in ports and moves every file nginx writes into our
 * temp dir, so the bench runs as any user and leaves nothing behind.
 */
import { join } from 'node:path';

export const NGINX_REFERENCE = `worker_processes 1;
daemon off;
pid PID_FILE;
error_log ERROR_LOG;
events { worker_connections 4096; }
http {
  access_log off;
  TEMP_PATHS
  upstream app { server 127.0.0.1:BACKEND_PORT; keepalive 64; }
  # the backend: a fixed small response, so the proxy is the bottleneck
  server { listen 127.0.0.1:BACKEND_PORT; location / { return 200 "hello world\\n"; } }
  # nginx as the proxy under comparison
  server {
    listen 127.0.0.1:PROXY_PORT;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`;

/** The body the backend answers with; every path is checked to return exactly this. */
export const BACKEND_BODY = 'hello world\n';

export function renderNginxConf(opts: { dir: string; backendPort: number; proxyPort: number }): string {
  checkPorts({ backendPort: opts.backendPort, proxyPort: opts.proxyPort });
  checkDir(opts.dir);
  const temp = tempPaths(opts.dir, '');
  return NGINX_REFERENCE.replaceAll('BACKEND_PORT', String(opts.backendPort))
    .replaceAll('PROXY_PORT', String(opts.proxyPort))
    .replace('PID_FILE', join(opts.dir, 'nginx.pid'))
    .replace('ERROR_LOG', join(opts.dir, 'error.log'))
    .replace('TEMP_PATHS', temp);
}

/** nginx's temp paths, all under `dir` (each name prefixed with `prefix`). */
function tempPaths(dir: string, prefix: string): string {
  return ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((k) => `${k}_temp_path ${join(dir, `${prefix}${k}_temp`)};`)
    .join(' ');
}

/** Ports, paths and names nginx would misread are refused before any config is written. */
function checkPorts(ports: Readonly<Record<string, number>>): void {
  for (const [name, port] of Object.entries(ports)) {
    if (!Number.isInteger(port) || port < 1 || port > 65_535)
      throw new Error(`nginx: ${name} ${port} is not a port`);
  }
}

function checkDir(dir: string): void {
  if (/[\s;{}"']/.test(dir)) throw new Error(`nginx: temp dir "${dir}" holds characters nginx would misread`);
}

/** The head every generated config shares: one worker, every file it writes under `dir/name.*`. */
function head(dir: string, name: string): string {
  const temp = tempPaths(dir, `${name}-`);
  return [
    'worker_processes 1;',
    'daemon off;',
    `pid ${join(dir, `${name}.pid`)};`,
    `error_log ${join(dir, `${name}-error.log`)};`,
    'events { worker_connections 4096; }',
    `http { access_log off; ${temp}`,
  ].join('\n');
}

/**
 * `npm run bench`'s one-hop nginx setup: the reference config split in two processes, so that
 * the nginx proxy's CPU per request (its worker's /proc/<pid>/stat) is the proxy's alone, as
 * Remora's is. The backend server and the proxy's location are the reference's, verbatim.
 */
export function renderSplitNginxConfs(opts: { dir: string; backendPort: number; proxyPort: number }): {
  backend: string;
  proxy: string;
} {
  checkPorts({ backendPort: opts.backendPort, proxyPort: opts.proxyPort });
  checkDir(opts.dir);
  return {
    backend: `${head(opts.dir, 'backend')}
  # the backend: a fixed small response, so the proxy is the bottleneck
  server { listen 127.0.0.1:${opts.backendPort}; location / { return 200 "hello world\\n"; } }
}
`,
    proxy: `${head(opts.dir, 'proxy')}
  upstream app { server 127.0.0.1:${opts.backendPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${opts.proxyPort};
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`,
  };
}

export interface MeshPki {
  readonly ca: string;
  readonly aCert: string;
  readonly aKey: string;
  readonly bCert: string;
  readonly bKey: string;
}

/**
 * The two-nginx mesh hop of `../shared/bench/nginx-mesh-hop.sh`, generated here because that
 * script runs its own hey and cannot be driven round by round: nginx A (plaintext in, mutual
 * TLS 1.3 out, upstream keep-alive, session reuse, B's name verified) → nginx B (mutual TLS in,
 * client certificate verified) → the backend. The directives are the script's.
 */
export function renderNginxMeshConfs(opts: {
  dir: string;
  backendPort: number;
  aPort: number;
  bPort: number;
  pki: MeshPki;
}): { a: string; b: string } {
  checkPorts({ backendPort: opts.backendPort, aPort: opts.aPort, bPort: opts.bPort });
  checkDir(opts.dir);
  for (const f of Object.values(opts.pki)) checkDir(f);
  const k = opts.pki;
  return {
    a: `${head(opts.dir, 'mesh-a')}
  upstream b { server 127.0.0.1:${opts.bPort}; keepalive 64; }
  server { listen 127.0.0.1:${opts.aPort};
    location / { proxy_pass https://b; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_ssl_certificate ${k.aCert}; proxy_ssl_certificate_key ${k.aKey}; proxy_ssl_protocols TLSv1.3;
      proxy_ssl_trusted_certificate ${k.ca}; proxy_ssl_verify on; proxy_ssl_name b.mesh.local; proxy_ssl_session_reuse on; } }
}
`,
    b: `${head(opts.dir, 'mesh-b')}
  upstream app { server 127.0.0.1:${opts.backendPort}; keepalive 64; }
  server { listen 127.0.0.1:${opts.bPort} ssl; ssl_certificate ${k.bCert}; ssl_certificate_key ${k.bKey}; ssl_protocols TLSv1.3;
    ssl_client_certificate ${k.ca}; ssl_verify_client on;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
`,
  };
}

/**
 * The script's PKI, made with openssl the way it makes it: a P-256 CA, and for a and b a leaf
 * with the SPIFFE URI and the `<n>.mesh.local` DNS name. Returns the file names.
 */
export function opensslCommands(dir: string): { commands: string[][]; pki: MeshPki } {
  const f = (n: string): string => join(dir, n);
  const commands: string[][] = [
    ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f('mesh-ca.key')],
    [
      'req',
      '-x509',
      '-new',
      '-key',
      f('mesh-ca.key'),
      '-subj',
      '/CN=mesh-ca',
      '-days',
      '2',
      '-out',
      f('mesh-ca.pem'),
    ],
  ];
  for (const n of ['a', 'b']) {
    commands.push(
      ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f(`mesh-${n}.key`)],
      ['req', '-new', '-key', f(`mesh-${n}.key`), '-subj', `/CN=${n}`, '-out', f(`mesh-${n}.csr`)],
      [
        'x509',
        '-req',
        '-in',
        f(`mesh-${n}.csr`),
        '-CA',
        f('mesh-ca.pem'),
        '-CAkey',
        f('mesh-ca.key'),
        '-CAcreateserial',
        '-days',
        '2',
        '-extfile',
        f(`mesh-${n}.ext`),
        '-out',
        f(`mesh-${n}.pem`),
      ],
    );
  }
  return {
    commands,
    pki: {
      ca: f('mesh-ca.pem'),
      aCert: f('mesh-a.pem'),
      aKey: f('mesh-a.key'),
      bCert: f('mesh-b.pem'),
      bKey: f('mesh-b.key'),
    },
  };
}

/** The extension file of leaf `n` (written before opensslCommands' x509 step). */
export function leafExtension(n: string): string {
  return `subjectAltName=URI:spiffe://cluster.local/ns/bench/sa/${n},DNS:${n}.mesh.local\n`;
}
