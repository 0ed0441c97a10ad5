/** Jest: TypeScript tests under test/, compiled by ts-jest with tsconfig.json. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.json' }] },
  // Examples import the package by name, as a user's device would.
  moduleNameMapper: { '^vfio-user$': '<rootDir>/lib/index.ts', '^vfio-user/guest$': '<rootDir>/lib/guest/index.ts' },
  testTimeout: 30000,
};
