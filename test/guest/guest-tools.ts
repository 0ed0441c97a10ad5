/**
 * What the guest tests share: the static pci-tool built once per test file,
 * a shell prelude that finds devices by ID, and a parser for the
 * `key=value` lines the scripts print.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { compileStaticProgram, type GuestFile } from 'vfio-user/guest';

let pciTool: Promise<Buffer> | undefined;

/** test/guest/programs/pci-tool.c, compiled with gcc -static (once per process). */
export function pciToolFiles(): Promise<Record<string, GuestFile>> {
  pciTool ??= compileStaticProgram(readFileSync(join(__dirname, 'programs', 'pci-tool.c'), 'utf8'));
  return pciTool.then((data) => ({ '/bin/pci-tool': { data, mode: 0o755 } }));
}

/** Shell functions for guest scripts: `dev_of VENDOR DEVICE` prints the sysfs directory. */
export const SHELL_PRELUDE = `
dev_of() {
  for d in /sys/bus/pci/devices/*; do
    if [ "$(cat $d/vendor)" = "$1" ] && [ "$(cat $d/device)" = "$2" ]; then echo $d; return 0; fi
  done
  echo "no device $1:$2" >&2; return 1
}
irq_count() { awk -v irq="$1:" '$1 == irq { print $2 }' /proc/interrupts; }
`;

/** The `key=value` lines of a script's output as an object (later keys win). */
export function keyValues(output: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const line of output.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0 && /^[\w.-]+$/.test(line.slice(0, eq))) {
      values[line.slice(0, eq)] = line.slice(eq + 1);
    }
  }
  return values;
}
