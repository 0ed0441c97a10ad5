/**
 * The API reference builds from the TSDoc with no TypeDoc warning
 * (typedoc.json treats warnings as errors): what `npm run docs` does.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(__dirname, '..', '..');

test('npm run docs builds the API reference without warnings', () => {
  const out = mkdtempSync(join(tmpdir(), 'vfu-api-'));
  try {
    const run = spawnSync(process.execPath, [join(root, 'node_modules', 'typedoc', 'bin', 'typedoc'), '--out', out], {
      cwd: root,
      encoding: 'utf8',
      timeout: 240_000,
    });
    const output = `${run.stdout}${run.stderr}`;
    expect(output).not.toMatch(/warning|error/i);
    expect(run.status).toBe(0);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}, 300_000);
