/**
 * The guest's initramfs: busybox as the whole userland, the requested kernel
 * modules (loaded in dependency order), the caller's files, and an /init that
 * runs the caller's shell script between two markers on the serial console,
 * then powers the machine off.
 */
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';

import type { GuestKit } from './guest-kit';
import { buildInitramfs, type InitramfsEntry } from './initramfs';
import { resolveModules } from './kernel-modules';

/** A file to put into the guest: its contents, or contents with a mode (e.g. 0o755 for a program). */
export type GuestFile = string | Uint8Array | { data: string | Uint8Array; mode: number };

/** What the guest runs and what it needs for it. */
export interface GuestImageOptions {
  /** The shell script (busybox sh) to run; its exit status is the guest's result. */
  script: string;
  /** Kernel modules to load before the script, by name (dependencies are added). */
  modules?: readonly string[];
  /** Extra files by absolute guest path, e.g. `{ '/bin/dma-test': program }`. */
  files?: Readonly<Record<string, GuestFile>>;
}

/** Printed by /init right before the script runs. */
export const BEGIN_MARKER = '<<vfu-guest begin>>';
/** Printed by /init with the script's exit status: `<<vfu-guest exit=N>>`. */
export const EXIT_MARKER = /<<vfu-guest exit=(\d+)>>/;

function initScript(modules: readonly string[]): string {
  const loads = modules
    .map((m) => `insmod /lib/modules/${m}.ko || { echo "vfu-guest: insmod ${m} failed"; finish 254; }`)
    .join('\n');
  return `#!/bin/busybox sh
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
# Only emergencies on the console: the script's output stays readable.
echo 1 > /proc/sys/kernel/printk
# The host may type into the console; it must not be echoed into the output.
stty -echo 2>/dev/null
finish() { echo "<<vfu-guest exit=$1>>"; sync; poweroff -f; }
${loads}
echo '${BEGIN_MARKER}'
sh /vfu/script.sh
finish $?
`;
}

function fileEntry(path: string, file: GuestFile): InitramfsEntry {
  if (typeof file === 'string' || file instanceof Uint8Array) {
    return { kind: 'file', path, data: typeof file === 'string' ? Buffer.from(file) : file };
  }
  const data = typeof file.data === 'string' ? Buffer.from(file.data) : file.data;
  return { kind: 'file', path, data, mode: file.mode };
}

/** Builds the gzip-compressed initramfs for `options` from the kit's busybox and modules. */
export function buildGuestImage(kit: GuestKit, options: GuestImageOptions): Buffer {
  const modules = resolveModules(kit.modulesDir, options.modules ?? []);
  const entries: InitramfsEntry[] = [];
  const dirs = new Set<string>();
  const addDir = (dir: string): void => {
    if (dir === '/' || dir === '.' || dirs.has(dir)) {
      return;
    }
    addDir(posix.dirname(dir));
    dirs.add(dir);
    entries.push({ kind: 'dir', path: dir });
  };
  for (const dir of ['/bin', '/sbin', '/usr/bin', '/usr/sbin', '/proc', '/sys', '/dev', '/tmp', '/lib/modules', '/vfu']) {
    addDir(dir);
  }
  entries.push({ kind: 'char', path: '/dev/console', major: 5, minor: 1 });
  entries.push({ kind: 'file', path: '/bin/busybox', data: readFileSync(kit.busybox), mode: 0o755 });
  entries.push({ kind: 'symlink', path: '/bin/sh', target: 'busybox' });
  entries.push({ kind: 'file', path: '/init', data: Buffer.from(initScript(modules.map((m) => m.name))), mode: 0o755 });
  entries.push({ kind: 'file', path: '/vfu/script.sh', data: Buffer.from(options.script), mode: 0o755 });
  for (const module of modules) {
    entries.push({ kind: 'file', path: `/lib/modules/${module.name}.ko`, data: readFileSync(module.path) });
  }
  for (const [path, file] of Object.entries(options.files ?? {})) {
    if (!path.startsWith('/')) {
      throw new Error(`guest file path ${path} must be absolute`);
    }
    addDir(posix.dirname(path));
    entries.push(fileEntry(path, file));
  }
  return buildInitramfs(entries);
}
