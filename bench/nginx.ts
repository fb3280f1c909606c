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
  for (const [name, port] of [
    ['backendPort', opts.backendPort],
    ['proxyPort', opts.proxyPort],
  ] as const) {
    if (!Number.isInteger(port) || port < 1 || port > 65_535)
      throw new Error(`nginx: ${name} ${port} is not a port`);
  }
  if (/[\s;{}"']/.test(opts.dir))
    throw new Error(`nginx: temp dir "${opts.dir}" holds characters nginx would misread`);
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((k) => `${k}_temp_path ${join(opts.dir, `${k}_temp`)};`)
    .join(' ');
  return NGINX_REFERENCE.replaceAll('BACKEND_PORT', String(opts.backendPort))
    .replaceAll('PROXY_PORT', String(opts.proxyPort))
    .replace('PID_FILE', join(opts.dir, 'nginx.pid'))
    .replace('ERROR_LOG', join(opts.dir, 'error.log'))
    .replace('TEMP_PATHS', temp);
}
