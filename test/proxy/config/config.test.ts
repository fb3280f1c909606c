import { describe, expect, it } from 'vitest';
import { DEFAULTS, parseConfig, publicConfig } from '../../../proxy/src/config/config.js';
import { loadConfig } from '../../../proxy/src/config/load.js';
import { ENV, PORTS } from '../../../proxy/src/contract.js';
import { ConfigError } from '../../../proxy/src/errors.js';

function errorsOf(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e.errors;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('parseConfig', () => {
  it('defaults to the contract ports and bind addresses, frozen', () => {
    const c = parseConfig({});
    expect(c.inboundPort).toBe(PORTS.inbound);
    expect(c.outboundPort).toBe(PORTS.outbound);
    expect(c.healthPort).toBe(PORTS.health);
    expect(c.metricsPort).toBe(PORTS.metrics);
    expect(c.adminPort).toBe(PORTS.admin);
    expect(c.inboundHost).toBe('0.0.0.0');
    expect(c.outboundHost).toBe('127.0.0.1');
    expect(c.adminHost).toBe('127.0.0.1');
    expect(c.healthHost).toBe('0.0.0.0');
    expect(c.drainSeconds).toBe(DEFAULTS.drainSeconds);
    expect(c.inboundTarget).toBeUndefined();
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('reads every field from the environment', () => {
    const c = parseConfig({
      [ENV.inboundPort]: '1',
      [ENV.outboundPort]: '2',
      [ENV.healthPort]: '3',
      [ENV.metricsPort]: '4',
      [ENV.adminPort]: '5',
      [ENV.tunnelPort]: '6',
      [ENV.inboundTarget]: '127.0.0.1:8080',
      [ENV.outboundTarget]: '[::1]:9090',
      [ENV.logLevel]: 'DEBUG',
      [ENV.drainSeconds]: '0.5',
      [ENV.bindHost]: '127.0.0.2',
      [ENV.detectTimeoutMs]: '250',
      [ENV.maxHeaderBytes]: '8192',
      [ENV.maxHeaders]: '50',
    });
    expect([c.inboundPort, c.outboundPort, c.healthPort, c.metricsPort, c.adminPort, c.tunnelPort]).toEqual([
      1, 2, 3, 4, 5, 6,
    ]);
    expect(c.inboundTarget).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(c.outboundTarget).toEqual({ host: '::1', port: 9090 });
    expect(c.logLevel).toBe('debug');
    expect(c.drainSeconds).toBe(0.5);
    expect([c.inboundHost, c.outboundHost, c.adminHost, c.healthHost, c.metricsHost]).toEqual(
      Array(5).fill('127.0.0.2'),
    );
    expect([c.detectTimeoutMs, c.maxHeaderBytes, c.maxHeaders]).toEqual([250, 8192, 50]);
  });

  it('lists every error at once, not just the first', () => {
    const errors = errorsOf(() =>
      parseConfig({
        [ENV.inboundPort]: 'x',
        [ENV.outboundPort]: '70000',
        [ENV.inboundTarget]: 'nohost',
        [ENV.outboundTarget]: 'a:0',
        [ENV.logLevel]: 'loud',
        [ENV.drainSeconds]: '-1',
        [ENV.failureMode]: 'explode',
        [ENV.accessLogSample]: '2',
      }),
    );
    expect(errors).toHaveLength(8);
    for (const name of [
      ENV.inboundPort,
      ENV.outboundPort,
      ENV.inboundTarget,
      ENV.outboundTarget,
      ENV.logLevel,
      ENV.drainSeconds,
      ENV.failureMode,
      ENV.accessLogSample,
    ]) {
      expect(errors.some((e) => e.startsWith(name))).toBe(true);
    }
  });

  it('reads the pod IP and the localhost inbound ports; refuses what is not an IP or a port, naming it', () => {
    const c = parseConfig({ [ENV.podIp]: '10.1.2.3', [ENV.localhostInboundPorts]: '6379, 8081,6379' });
    expect(c.podIp).toBe('10.1.2.3');
    expect(c.localhostInboundPorts).toEqual([6379, 8081]);
    expect(parseConfig({}).localhostInboundPorts).toEqual([]);
    expect(parseConfig({ [ENV.podIp]: 'fd00::12' }).podIp).toBe('fd00::12');
    const errors = errorsOf(() =>
      parseConfig({ [ENV.podIp]: 'pod-a', [ENV.localhostInboundPorts]: '80,http,70000' }),
    );
    expect(errors).toEqual([
      `${ENV.podIp}: not an IP address: "pod-a"`,
      `${ENV.localhostInboundPorts}: not a port (1..65535): "http" in "80,http,70000"`,
      `${ENV.localhostInboundPorts}: not a port (1..65535): "70000" in "80,http,70000"`,
    ]);
  });

  it('reports two listeners on the same port', () => {
    const errors = errorsOf(() => parseConfig({ [ENV.healthPort]: '15090' }));
    expect(errors).toEqual([`${ENV.healthPort} and ${ENV.metricsPort} are both 15090`]);
  });

  it('reads the JSON file, with the environment winning', () => {
    const c = parseConfig(
      { [ENV.adminPort]: '7000' },
      JSON.stringify({ adminPort: 6000, inboundPort: 6006, logLevel: 'warn' }),
    );
    expect(c.adminPort).toBe(7000);
    expect(c.inboundPort).toBe(6006);
    expect(c.logLevel).toBe('warn');
  });

  it('rejects a bad file: invalid JSON, unknown fields, wrong types', () => {
    expect(errorsOf(() => parseConfig({}, '{nope'))[0]).toMatch(/^REMORA_CONFIG_FILE: not valid JSON/);
    const errors = errorsOf(() => parseConfig({}, JSON.stringify({ inboundprot: 1, adminPort: { x: 1 } })));
    expect(errors).toEqual([
      'REMORA_CONFIG_FILE: unknown field "inboundprot"',
      'REMORA_CONFIG_FILE:adminPort: expected a string, number or boolean, got {"x":1}',
    ]);
  });

  it('loadConfig names an unreadable file together with the env errors', () => {
    const errors = errorsOf(() =>
      loadConfig({ [ENV.configFile]: '/nonexistent/remora.json', [ENV.adminPort]: 'x' }),
    );
    expect(errors).toHaveLength(2);
    expect(errors[0]).toContain('ENOENT');
  });

  it('reads the upstream client: codec by default, undici on request, anything else refused', () => {
    expect(parseConfig({}).upstreamClient).toBe('codec');
    expect(parseConfig({ [ENV.upstreamClient]: 'undici' }).upstreamClient).toBe('undici');
    const errors = errorsOf(() => parseConfig({ [ENV.upstreamClient]: 'curl' }));
    expect(errors).toEqual([`${ENV.upstreamClient}: must be one of codec, undici: "curl"`]);
  });

  it('reads the HTTP/1.1-over-HTTP/2 switch between proxies: off by default, on/off only', () => {
    expect(parseConfig({}).meshHttp1OverH2).toBe(false);
    expect(parseConfig({ [ENV.meshHttp1OverH2]: 'on' }).meshHttp1OverH2).toBe(true);
    const errors = errorsOf(() => parseConfig({ [ENV.meshHttp1OverH2]: 'yes please' }));
    expect(errors).toEqual([`${ENV.meshHttp1OverH2}: must be on or off: "yes please"`]);
  });

  it('reads declared opaque and HTTP ports (lists and ranges), refusing bad entries and a port declared both ways', () => {
    const c = parseConfig({
      [ENV.opaquePorts]: '3306, 9000-9010',
      [ENV.httpPorts]: '8080',
      [ENV.outboundOpaquePorts]: '5432',
      [ENV.outboundHttpPorts]: '80,8000-8001',
    });
    expect(c.opaquePorts).toEqual([
      [3306, 3306],
      [9000, 9010],
    ]);
    expect(c.httpPorts).toEqual([[8080, 8080]]);
    expect(c.outboundOpaquePorts).toEqual([[5432, 5432]]);
    expect(c.outboundHttpPorts).toEqual([
      [80, 80],
      [8000, 8001],
    ]);
    expect(parseConfig({}).opaquePorts).toEqual([]);
    expect(errorsOf(() => parseConfig({ [ENV.opaquePorts]: '3306,mysql,0,9010-9000,70000' }))).toEqual(
      ['"mysql"', '"0"', '"9010-9000"', '"70000"'].map(
        (v) => `${ENV.opaquePorts}: not a port or a range of ports (1..65535, e.g. 3306,9000-9010): ${v}`,
      ),
    );
    expect(errorsOf(() => parseConfig({ [ENV.opaquePorts]: '9000-9010', [ENV.httpPorts]: '9005' }))).toEqual([
      `${ENV.opaquePorts} and ${ENV.httpPorts} both name port 9005: a port is opaque or HTTP, not both`,
    ]);
  });

  it('publicConfig redacts OTLP headers', () => {
    const c = parseConfig({ OTEL_EXPORTER_OTLP_HEADERS: 'authorization=secret' });
    expect(JSON.stringify(publicConfig(c))).not.toContain('secret');
  });
});
