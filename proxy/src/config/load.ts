/**
 * The only place that reads process.env and the config file (STYLE #4). Everything else gets
 * the frozen ProxyConfig from here.
 */
import { readFileSync } from 'node:fs';
import { ENV } from '../contract.js';
import { ConfigError } from '../errors.js';
import { parseConfig } from './config.js';
import type { ProxyConfig } from './config.js';

export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env): ProxyConfig {
  const path = env[ENV.configFile];
  let contents: string | undefined;
  if (path !== undefined && path !== '') {
    try {
      contents = readFileSync(path, 'utf8');
    } catch (err) {
      // Report the unreadable file together with whatever else is wrong in the environment.
      const fileError = `${ENV.configFile}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`;
      try {
        parseConfig(env);
      } catch (e) {
        if (e instanceof ConfigError) throw new ConfigError([fileError, ...e.errors]);
        throw e;
      }
      throw new ConfigError([fileError]);
    }
  }
  return parseConfig(env, contents);
}
