/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    // Type checking happens once in `npm run lint` (tsc --noEmit); jest only transpiles.
    '^.+\\.ts$': 'ts-jest',
  },
  testTimeout: 60_000,
  // moto_server and embedded PostgreSQL are real processes: keep the worker count at the core count.
  maxWorkers: 2,
};
