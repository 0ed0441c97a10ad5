/**
 * How the addon is built: the vendored library's gypi stays in step with its
 * sources, and the addon also builds and works against an installed
 * libvfio-user found with pkg-config (scripts/test-system-lib.sh).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.join(__dirname, '..', '..');

test('libvfio-user.gypi lists every C source of the library', () => {
  const gypi = fs.readFileSync(path.join(root, 'vendor/libvfio-user/libvfio-user.gypi'), 'utf8');
  const listed = [...gypi.matchAll(/'(src\/[^']+\.c)'/g)].map((m) => m[1]).sort();
  const present = fs
    .readdirSync(path.join(root, 'vendor/libvfio-user/src'))
    .filter((name) => name.endsWith('.c'))
    .map((name) => `src/${name}`)
    .sort();
  expect(listed).toEqual(present);
});

test('the addon built against an installed libvfio-user serves a device', () => {
  const result = spawnSync('bash', [path.join(root, 'scripts/test-system-lib.sh')], {
    cwd: root,
    encoding: 'utf8',
    timeout: 600_000,
  });
  if (result.status !== 0) {
    throw new Error(`test-system-lib.sh failed (${result.status}):\n${result.stdout}\n${result.stderr}`);
  }
  expect(result.stdout).toContain('system-lib: a device served through the system-library addon works');
}, 600_000);
