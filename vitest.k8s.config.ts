// `npm run test:k8s`: the suite against a real kube-apiserver + etcd + kube-controller-manager
// (test/k8s/harness.ts), built by test/k8s/build.sh. `npm test` runs these files too (the root
// config includes test/**); this config runs them alone, one file at a time.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/k8s/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 240_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
