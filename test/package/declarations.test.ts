/**
 * The published .d.ts files compile in a user's strict project, with lib
 * checking on (no skipLibCheck), at every target from ES2020, under
 * TypeScript 5 (this repository's) and 7 (installed from the registry).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { buildDist, makeProject } from '../cli/project';

jest.setTimeout(180_000);

const projects: string[] = [];

afterAll(() => {
  for (const dir of projects) {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Uses every export of the device and client entry points, so that every declaration file is read. */
const USER_CODE = `import * as vfio from 'vfio-user';
import * as vfioClient from 'vfio-user/client';
import { PciDevice } from 'vfio-user';
import { VfioUserClient } from 'vfio-user/client';
const device: PciDevice = new PciDevice({ vendorId: 1, deviceId: 2 });
const exported: number = Object.keys(vfio).length + Object.keys(vfioClient).length;
export const used: unknown[] = [device, exported, VfioUserClient];
`;

/** tsc's diagnostics for the user's file; '' when it compiles. */
function check(project: string, target: string): string {
  const manifest = JSON.parse(readFileSync(join(project, 'node_modules', 'typescript', 'package.json'), 'utf8')) as { bin: { tsc: string } };
  const tsc = join(project, 'node_modules', 'typescript', manifest.bin.tsc);
  try {
    execFileSync(
      process.execPath,
      [tsc, '--strict', '--noEmit', '--pretty', 'false', '--target', target, '--module', 'nodenext', '--types', 'node', 'user.ts'],
      { cwd: project, encoding: 'utf8' },
    );
    return '';
  } catch (err) {
    return String((err as { stdout?: string }).stdout ?? err);
  }
}

beforeAll(() => buildDist());

// Checking @types/node without skipLibCheck is slow under TypeScript 5, so
// it checks the lowest target; TypeScript 7 checks the range.
test.each([
  ['5', undefined, ['es2020']],
  ['7', '7', ['es2020', 'es2022', 'esnext']],
])('TypeScript %s: --strict, no skipLibCheck, targets from ES2020', (_major, install, targets) => {
  const project = makeProject(install);
  projects.push(project);
  writeFileSync(join(project, 'user.ts'), USER_CODE);
  for (const target of targets) {
    expect({ target, diagnostics: check(project, target) }).toEqual({ target, diagnostics: '' });
  }
  // The check can fail: a type error in the user's file is reported.
  writeFileSync(join(project, 'user.ts'), `${USER_CODE}export const wrong: string = device;\n`);
  expect(check(project, targets[0])).toContain('error TS2322');
});
