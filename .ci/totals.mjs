// Sums the vitest JSON reports of the CI runs and prints the one line CI reads.
// A run that failed outside its tests (type-check, lint, a crash) counts as one failure.
import { readFileSync } from 'node:fs';

const [r20, r24, rc20, rc24] = process.argv.slice(2);
let passed = 0;
let failed = 0;
for (const [file, rc] of [
  [r20, rc20],
  [r24, rc24],
]) {
  let report;
  try {
    report = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    report = undefined;
  }
  if (report) {
    passed += report.numPassedTests;
    failed += report.numFailedTests;
    // A file that failed to load fails no test but fails its suite.
    if (report.numFailedTests === 0) failed += report.numFailedTestSuites;
    if (rc !== '0' && report.numFailedTests === 0) failed += 1;
  } else if (rc !== '0' || file === r20) {
    failed += 1;
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && rc20 === '0' && rc24 === '0' ? 0 : 1);
