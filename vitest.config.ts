import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Suites open real stores on disk and spawn child processes.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Each test file runs in its own process (the addon is loaded per process).
    pool: 'forks',
  },
});
