/**
 * Jest: TypeScript tests under test/, compiled by ts-jest with tsconfig.json.
 *
 * The tests are grouped into named projects, and every script picks its
 * groups by name (`jest --selectProjects device addon`), so which folder belongs
 * to which run is written here only. The projects do not overlap: a plain
 * `jest some/file.test.ts` runs that file once.
 */
const shared = {
  testEnvironment: 'node',
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.json' }] },
  // Examples import the package by name, as a user's device would.
  moduleNameMapper: {
    '^vfio-user$': '<rootDir>/lib/index.ts',
    '^vfio-user/client$': '<rootDir>/lib/client/index.ts',
    '^vfio-user/guest$': '<rootDir>/lib/guest/index.ts',
    '^vfio-user/virtio$': '<rootDir>/lib/virtio/index.ts',
  },
};

/** A project made of whole folders of test/. */
function folders(displayName, names, extra = {}) {
  return { ...shared, displayName, roots: names.map((name) => `<rootDir>/test/${name}`), ...extra };
}

// The addon's build checks rebuild it; the other addon suites run against
// whichever addon is loaded, the sanitized one included.
const addonBuild = 'build.test.ts';

module.exports = {
  testTimeout: 30000,
  projects: [
    // The device API, the server and the client, in-process over real sockets.
    folders('device', ['device', 'client']),
    // Device migration, through the client.
    folders('migration', ['migration']),
    // The example devices and the CLI.
    folders('examples', ['examples', 'cli']),
    // The virtio and NVMe device models.
    folders('virtio-nvme', ['virtio', 'nvme']),
    // The documentation's snippets and API reference.
    folders('docs', ['docs']),
    // The addon itself, through its raw native interface.
    folders('addon', ['native'], { testPathIgnorePatterns: [`/${addonBuild}$`] }),
    // How the addon is built: gypi in step with the sources, system-library builds.
    folders('addon-build', ['native'], { testMatch: [`**/${addonBuild}`] }),
    // The packed tarball installed into a fresh project.
    folders('package', ['package']),
    // A real QEMU driven through qtest, no guest kernel (scripts/test-vm.sh qemu).
    folders('qemu', ['qemu']),
    // Real Linux guests under QEMU (scripts/test-vm.sh guest).
    folders('guest', ['guest']),
    // Scenarios that a test runs in a jest of its own (test/client/open-handles.test.ts).
    folders('scenarios', ['fixtures'], { testMatch: ['**/*.scenario.ts'] }),
  ],
};
