/**
 * Finds kernel modules by name in an unpacked lib/modules/<version> tree and
 * orders them so that each comes after the modules it depends on. Debian's
 * kernel package ships no modules.dep (depmod makes it at install time), so
 * the dependencies are read from each module's own `.modinfo` strings.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';

const indexes = new Map<string, Map<string, string>>();

/** Module names treat `-` and `_` alike, as the kernel does. */
function canonical(name: string): string {
  return name.replace(/-/g, '_');
}

function moduleIndex(modulesDir: string): Map<string, string> {
  let index = indexes.get(modulesDir);
  if (index === undefined) {
    index = new Map();
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) {
          walk(path);
        } else if (entry.name.endsWith('.ko')) {
          index?.set(canonical(basename(entry.name, '.ko')), path);
        }
      }
    };
    walk(join(modulesDir, 'kernel'));
    indexes.set(modulesDir, index);
  }
  return index;
}

/** The names in a module file's `depends=` string (empty when it has none). */
function dependenciesOf(modulePath: string): string[] {
  const text = readFileSync(modulePath).toString('latin1');
  const match = /\0depends=([^\0]*)\0/.exec(text);
  return match === null || match[1] === '' ? [] : match[1].split(',').map(canonical);
}

/** The names of the modules built into the kernel (nothing to load for them). */
function builtins(modulesDir: string): Set<string> {
  try {
    const lines = readFileSync(join(modulesDir, 'modules.builtin'), 'utf8').split('\n');
    return new Set(lines.filter((l) => l !== '').map((l) => canonical(basename(l, '.ko'))));
  } catch {
    return new Set();
  }
}

/** A module file to load, with its name. */
export interface ModuleFile {
  name: string;
  path: string;
}

/**
 * The module files needed to load `names` (dependencies first, each once).
 * Built-in modules are skipped; a name that is neither built in nor found is
 * an error naming the directory searched.
 */
export function resolveModules(modulesDir: string, names: readonly string[]): ModuleFile[] {
  const index = moduleIndex(modulesDir);
  const builtIn = builtins(modulesDir);
  const ordered: ModuleFile[] = [];
  const seen = new Set<string>();
  const visit = (name: string, chain: string[]): void => {
    const key = canonical(name);
    if (seen.has(key) || builtIn.has(key)) {
      return;
    }
    const path = index.get(key);
    if (path === undefined) {
      const via = chain.length > 0 ? ` (needed by ${chain.join(' <- ')})` : '';
      throw new Error(`kernel module ${name}${via} is not in ${modulesDir}`);
    }
    seen.add(key);
    for (const dependency of dependenciesOf(path)) {
      visit(dependency, [key, ...chain]);
    }
    ordered.push({ name: key, path });
  };
  names.forEach((name) => visit(name, []));
  return ordered;
}
