/**
 * Packs the package once per test file, as `npm publish` would (prepack:
 * dist/ and the prebuilt addon), into a temporary folder, and makes the
 * "user's machines" the install tests run on: a PATH with node and npm but
 * no C toolchain, and one with the toolchain but no cmake.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { tempDir } from '../support/temp-dir';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');

export interface PackedFile {
  readonly path: string;
  readonly size: number;
}

export interface Tarball {
  readonly file: string;
  readonly files: readonly PackedFile[];
}

/** Runs prepack, then `npm pack --json` (scripts already run, so the JSON is clean). */
export function packTarball(destination: string): Tarball {
  execFileSync('npm', ['run', 'prepack'], { cwd: REPO_ROOT, stdio: 'pipe' });
  const out = execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', destination], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
  });
  const [packed] = JSON.parse(out) as { filename: string; files: PackedFile[] }[];
  return { file: path.join(destination, packed.filename), files: packed.files };
}

/**
 * A folder of links to the given programs, to be the whole PATH: what a
 * machine with only those installed would offer.
 */
export function pathWith(programs: readonly string[]): string {
  const dir = tempDir('vfu-path-');
  for (const program of programs) {
    const found = execFileSync('sh', ['-c', `command -v ${program}`], { encoding: 'utf8' }).trim();
    fs.symlinkSync(found, path.join(dir, program));
  }
  return dir;
}

/** An environment without the npm_* variables of the npm that runs the tests. */
export function userEnv(pathValue: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^npm_/i.test(name) && name !== 'PATH' && name !== 'INIT_CWD') {
      env[name] = value;
    }
  }
  return { ...env, PATH: pathValue, ...extra };
}

/** A new project folder with a package.json, as `npm init -y` would make. */
export function newProject(): string {
  const dir = tempDir('vfu-user-project-');
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'my-device', version: '1.0.0', private: true }));
  return dir;
}
