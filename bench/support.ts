/**
 * What the benchmark and soak runners share: where the package is, and
 * counts taken from the environment.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The folder of the vfio-user package, searched upwards from `from`. */
export function findRoot(from: string): string {
  for (let dir = from; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg) && (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: string }).name === 'vfio-user') {
      return dir;
    }
  }
  throw new Error('cannot find the vfio-user package root');
}

/** A positive integer from the environment variable `name`, else `fallback`. */
export function envInt(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`${name} must be a positive integer`);
  }
  return value;
}
