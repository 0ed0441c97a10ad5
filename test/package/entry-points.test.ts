/**
 * What each built entry point loads, required by its package name in a fresh
 * node: a device (`vfio-user`, `vfio-user/virtio`, the `vfio-user serve`
 * command) loads no module of the test client or the guest kit, whose code
 * and memory a served device would otherwise carry for nothing.
 */
import { execFileSync } from 'node:child_process';

import { buildDist, ROOT } from '../cli/project';

jest.setTimeout(120_000);

beforeAll(() => buildDist());

/** The files under dist/ that requiring `request` from the repository loads, relative to dist/. */
function loadedBy(request: string): string[] {
  // The repository requires itself by name through package.json "exports", as a user's project would.
  const script = `
    require(${JSON.stringify(request)});
    const dist = require('node:path').join(process.cwd(), 'dist') + '/';
    const files = Object.keys(require.cache).filter((file) => file.startsWith(dist));
    process.stdout.write(JSON.stringify(files.map((file) => file.slice(dist.length))));
  `;
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: ROOT, encoding: 'utf8' })) as string[];
}

const underClientOrGuest = (files: readonly string[]): string[] => files.filter((file) => /^(client|guest)\//.test(file));

test.each([
  ['vfio-user', 'index.js'],
  ['vfio-user/virtio', 'virtio/index.js'],
  ['./dist/cli.js', 'cli.js'],
])('%s loads no module of the client or the guest kit', (request, entry) => {
  const files = loadedBy(request);
  expect(files).toContain(entry);
  expect(files).toContain('device.js');
  expect(underClientOrGuest(files)).toEqual([]);
});

test('vfio-user/client does load the client (the check above sees it)', () => {
  const files = loadedBy('vfio-user/client');
  expect(underClientOrGuest(files)).toEqual(expect.arrayContaining(['client/index.js', 'client/client.js', 'client/migrate.js']));
});
