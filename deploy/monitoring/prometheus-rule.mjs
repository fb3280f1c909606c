// Writes prometheus-rule.yaml (the Prometheus Operator's PrometheusRule) from remora-rules.yaml,
// the one source: `node deploy/monitoring/prometheus-rule.mjs`. The CR's spec.groups is the
// rules file's groups, verbatim (comments kept); test/deploy/monitoring checks the output is
// current.
import { readFileSync, writeFileSync } from 'node:fs';
import process from 'node:process';
import { URL, fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));

/** The CR text for a rules file's text. */
export function prometheusRule(rules) {
  const at = rules.indexOf('\ngroups:\n');
  if (at < 0) throw new Error('remora-rules.yaml: no top-level "groups:"');
  const groups = rules
    .slice(at + 1)
    .split('\n')
    .map((l) => (l === '' ? l : `  ${l}`))
    .join('\n');
  return [
    '# GENERATED from remora-rules.yaml by `node deploy/monitoring/prometheus-rule.mjs`: do not edit.',
    '# The Prometheus Operator form of the same alerts (docs/telemetry.md, "Alerts").',
    'apiVersion: monitoring.coreos.com/v1',
    'kind: PrometheusRule',
    'metadata:',
    '  name: remora',
    '  labels:',
    '    app.kubernetes.io/name: remora',
    '    app.kubernetes.io/component: alerts',
    'spec:',
    groups,
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(
    `${dir}prometheus-rule.yaml`,
    prometheusRule(readFileSync(`${dir}remora-rules.yaml`, 'utf8')),
  );
}
