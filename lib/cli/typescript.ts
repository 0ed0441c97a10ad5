/**
 * Loading a `.ts` device with the user's own TypeScript, 5.x or 7.x.
 *
 * TypeScript 7 has no JavaScript compiler API (its package exports only its
 * version), but both 5 and 7 have the `tsc` command with the same flags. So
 * the device's file and everything it imports are compiled once by `tsc`,
 * type-checked on the way, into a temporary folder; `require` of a `.ts`
 * file then runs its compiled text under the original file name, so that
 * relative imports and `node_modules` resolve from where the source is.
 *
 * @packageDocumentation
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import Module from 'node:module';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { CliError } from './cli-error';

type ModuleInternals = typeof Module & {
  _extensions: Record<string, (module: Module & { _compile(code: string, filename: string): void }, filename: string) => void>;
};

/** The `tsc` script of the `typescript` package that `entry`'s project (or the current directory) uses. */
function findTsc(entry: string): { tsc: string; version: string } {
  let manifestPath: string;
  try {
    manifestPath = require.resolve('typescript/package.json', { paths: [path.dirname(entry), process.cwd()] });
  } catch {
    throw new CliError(
      `${path.basename(entry)} is TypeScript and the typescript package is not installed: ` +
        'run "npm install --save-dev typescript" (5.x or 7.x), or compile it to JavaScript',
      1,
    );
  }
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { version: string; bin?: { tsc?: string } };
  const major = Number(manifest.version.split('.')[0]);
  if (!(major >= 5) || manifest.bin?.tsc === undefined) {
    throw new CliError(`typescript ${manifest.version} is too old to compile ${path.basename(entry)}: install 5.x or newer`, 1);
  }
  return { tsc: path.join(path.dirname(manifestPath), manifest.bin.tsc), version: manifest.version };
}

function resolvableFrom(entry: string, request: string): boolean {
  try {
    require.resolve(request, { paths: [path.dirname(entry), process.cwd()] });
    return true;
  } catch {
    return false;
  }
}

/** The compiled file of a source: its absolute path mirrored under `outDir`. */
function outputOf(outDir: string, source: string): string {
  return path.join(outDir, source.replace(/\.([cm]?)ts$/, '.$1js'));
}

/**
 * Compiles `entry` and what it imports, then lets `require` load those
 * `.ts` files. Type errors fail with tsc's diagnostics, one per line.
 */
export function enableTypeScript(entry: string): void {
  const { tsc, version } = findTsc(entry);
  const outDir = mkdtempSync(path.join(tmpdir(), 'vfio-user-tsc-'));
  process.once('exit', () => rmSync(outDir, { recursive: true, force: true }));
  // rootDir "/" keeps every file's absolute path under outDir, wherever it is.
  const flags = ['--pretty', 'false', '--strict', '--module', 'nodenext', '--target', 'es2022', '--skipLibCheck', '--sourceMap', 'false'];
  // TypeScript 6 and later no longer include every @types package by default;
  // a device uses node: modules, so Node's types are named when installed.
  if (resolvableFrom(entry, '@types/node/package.json')) {
    flags.push('--types', 'node');
  }
  const result = spawnSync(process.execPath, [tsc, ...flags, '--outDir', outDir, '--rootDir', '/', entry], {
    encoding: 'utf8',
  });
  if (result.error !== undefined || result.status !== 0) {
    const diagnostics = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim() || String(result.error);
    throw new CliError(`${path.basename(entry)} does not compile (typescript ${version}):\n${diagnostics}`, 1);
  }
  const extensions = (Module as ModuleInternals)._extensions;
  const load: ModuleInternals['_extensions'][string] = (module, filename) => {
    let compiled: string;
    try {
      compiled = readFileSync(outputOf(outDir, filename), 'utf8');
    } catch {
      throw new CliError(`${filename} was not compiled: import it statically from ${path.basename(entry)}`, 1);
    }
    module._compile(compiled, filename);
  };
  for (const extension of ['.ts', '.cts']) {
    extensions[extension] = load;
  }
}
