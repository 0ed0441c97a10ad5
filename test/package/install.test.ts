/**
 * The package as a user gets it: the tarball's contents, `npm i` of it on a
 * machine with no C toolchain (the prebuilt addon), and the source build
 * with a toolchain but no cmake.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { tempDir } from '../support/temp-dir';
import { newProject, packTarball, pathWith, REPO_ROOT, userEnv, type Tarball } from './tarball';

jest.setTimeout(240_000);

let tarball: Tarball;

beforeAll(() => {
  tarball = packTarball(tempDir('vfu-pack-'));
});

/** What a user needs, as patterns over the tarball's paths; anything else is a mistake. */
const ALLOWED = [
  /^package\.json$/,
  /^README\.md$/,
  /^LICENSE$/,
  /^binding\.gyp$/,
  /^dist\/.+\.(js|d\.ts)$/,
  /^prebuilds\/linux-x64\/vfio-user\.glibc\.node$/,
  /^native\/[\w-]+\.(cc|c|h)$/,
  /^vendor\/libvfio-user\/libvfio-user\.gypi$/,
  /^vendor\/libvfio-user\/(include|src)\/[\w/-]+\.h$/,
  /^vendor\/libvfio-user\/src\/\w+\.c$/,
  /^examples\/[\w/-]+\.ts$/,
  /^docs\/[\w-]+\.md$/,
  // The guest harness provisions QEMU and the guest kernel with these.
  /^scripts\/(get-qemu|get-guest|debian-mirror|private-apt)\.sh$/,
];

describe('the tarball', () => {
  test('holds what a user needs and nothing else', () => {
    const paths = tarball.files.map((f) => f.path);
    expect(paths.filter((p) => !ALLOWED.some((re) => re.test(p)))).toEqual([]);
    for (const needed of [
      'LICENSE',
      'README.md',
      'dist/index.js',
      'dist/index.d.ts',
      'dist/cli.js',
      'prebuilds/linux-x64/vfio-user.glibc.node',
      'binding.gyp',
      'native/addon.cc',
      'vendor/libvfio-user/libvfio-user.gypi',
      'vendor/libvfio-user/include/libvfio-user.h',
      'vendor/libvfio-user/src/private.h',
      'examples/edu.ts',
    ]) {
      expect(paths).toContain(needed);
    }
    // Every C source the fallback build compiles is in it.
    const gypi = fs.readFileSync(path.join(REPO_ROOT, 'vendor/libvfio-user/libvfio-user.gypi'), 'utf8');
    for (const [, source] of gypi.matchAll(/'(src\/\w+\.c)'/g)) {
      expect(paths).toContain(`vendor/libvfio-user/${source}`);
    }
    const manifest = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
      repository: { url: string };
      scripts: Record<string, string>;
    };
    expect(manifest.repository.url).toMatch(/^git\+https:/);
    expect(manifest.scripts.install).toBe('node-gyp-build');
  });
});

/** A device and a jest test of it through the client, as a user's project would have. */
const USER_TEST = `
const { PciDevice, RegisterMap, VfioUserServer, Region } = require('vfio-user');
const { VfioUserClient } = require('vfio-user/client');

test('the device answers the client', async () => {
  const regs = new RegisterMap({ scratch: { offset: 0, width: 4, rw: 0xffffffff } });
  const device = new PciDevice({
    vendorId: 0x1b36, deviceId: 0x1234, classCode: 0xff0000,
    bars: [{ index: 0, size: 4096, handler: () => regs }],
  });
  const socket = require('node:path').join(require('node:os').tmpdir(), 'vfu-user-' + process.pid + '.sock');
  const server = new VfioUserServer(device, { socket });
  const client = await VfioUserClient.connect(socket);
  try {
    expect(await client.read16(Region.CONFIG, 2)).toBe(0x1234);
    await client.write32(0, 0, 0xcafe);
    expect(await client.read32(0, 0)).toBe(0xcafe);
  } finally {
    await client.close();
    await server.close();
  }
});
`;

/** Runs the user's test with this repository's jest (the project itself has none). */
function runUserTest(project: string, env: NodeJS.ProcessEnv): string {
  fs.writeFileSync(path.join(project, 'device.test.js'), USER_TEST);
  const jest = path.join(REPO_ROOT, 'node_modules', 'jest', 'bin', 'jest.js');
  return execFileSync(process.execPath, [jest, '--rootDir', project, '--ci'], {
    cwd: project,
    env,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

describe('npm i of the tarball', () => {
  test('with no compiler, make or cmake on PATH: the prebuilt addon, in seconds', () => {
    const bin = pathWith(['node', 'npm', 'sh']);
    const env = userEnv(bin);
    for (const tool of ['cc', 'gcc', 'g++', 'make', 'cmake']) {
      expect(() => execFileSync('sh', ['-c', `command -v ${tool}`], { env, stdio: 'ignore' })).toThrow();
    }
    const project = newProject();
    const started = Date.now();
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball.file], { cwd: project, env, stdio: 'pipe' });
    // About 5 s on an idle machine; a compile would take a minute. The margin
    // is for a CI machine shared with other jobs.
    expect((Date.now() - started) / 1000).toBeLessThan(20);
    const installed = path.join(project, 'node_modules', 'vfio-user');
    expect(fs.existsSync(path.join(installed, 'build'))).toBe(false);
    const loaded = execFileSync(process.execPath, ['-p', "require('node-gyp-build').resolve('node_modules/vfio-user')"], {
      cwd: project,
      env,
      encoding: 'utf8',
    });
    expect(loaded.trim()).toBe(path.join(installed, 'prebuilds', 'linux-x64', 'vfio-user.glibc.node'));
    runUserTest(project, env);
  });

  test('with a compiler and no usable prebuild: node-gyp builds it, without cmake', () => {
    // cmake is shadowed by one that fails and leaves a trace if anything runs it.
    const bin = tempDir('vfu-no-cmake-');
    const trace = path.join(bin, 'cmake-was-run');
    fs.writeFileSync(path.join(bin, 'cmake'), `#!/bin/sh\ntouch ${trace}\nexit 127\n`, { mode: 0o755 });
    const pathValue = `${bin}:${process.env.PATH}`;
    const env = userEnv(pathValue, { npm_config_build_from_source: 'true' });
    const project = newProject();
    execFileSync('npm', ['install', '--no-audit', '--no-fund', tarball.file], { cwd: project, env, stdio: 'pipe' });
    const built = path.join(project, 'node_modules', 'vfio-user', 'build', 'Release', 'vfio_user.node');
    expect(fs.existsSync(built)).toBe(true);
    expect(fs.existsSync(trace)).toBe(false);
    runUserTest(project, userEnv(pathValue));
  });
});
