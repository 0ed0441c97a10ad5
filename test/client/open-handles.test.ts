/**
 * `close()` on the client and the server leaves nothing open: a jest run
 * with --detectOpenHandles over a scenario that uses both reports no handle.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const root = join(__dirname, '..', '..');

function jestWithOpenHandles(scenario: string): { status: number | null; output: string } {
  const run = spawnSync(
    process.execPath,
    [join(root, 'node_modules', 'jest', 'bin', 'jest.js'), '--detectOpenHandles', `fixtures/${scenario}`, '--selectProjects', 'scenarios'],
    { cwd: root, encoding: 'utf8', timeout: 120_000 },
  );
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

test('server and client closed: jest --detectOpenHandles finds nothing open', () => {
  const { status, output } = jestWithOpenHandles('close-everything.scenario.ts');
  expect(output).toContain('1 passed');
  expect(output).not.toMatch(/open handle/i);
  expect(status).toBe(0);
});
