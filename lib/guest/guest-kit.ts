/**
 * Where the guest's parts come from: the QEMU binary, the kernel, its
 * modules and a static busybox. Defaults are what scripts/get-qemu.sh and
 * scripts/get-guest.sh install next to the package (.qemu/ and .guest/);
 * options and environment variables override each part.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

/** The package's root directory, from lib/guest/ or dist/guest/ alike. */
export const PACKAGE_ROOT = resolve(__dirname, '..', '..');

/** The parts a guest boots with; every path is absolute. */
export interface GuestKit {
  /** qemu-system-x86_64 with vfio-user-pci. */
  qemu: string;
  /** The kernel image (bzImage). */
  kernel: string;
  /** The kernel's lib/modules/<version> directory. */
  modulesDir: string;
  /** A statically linked busybox: the guest's whole userland. */
  busybox: string;
}

/** Overrides of the {@link GuestKit} parts; unset parts use the defaults. */
export type GuestKitOptions = Partial<GuestKit>;

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Resolves the guest's parts: `options` first, then `$QEMU`, `$VFU_GUEST_KERNEL`,
 * `$VFU_GUEST_MODULES`, `$VFU_GUEST_BUSYBOX`, then `.qemu/` and `.guest/` (or
 * `$VFU_GUEST_DIR`) in the package. A missing part is an error that says how
 * to provide it.
 */
export function findGuestKit(options: GuestKitOptions = {}, env: NodeJS.ProcessEnv = process.env): GuestKit {
  const guestDir = env.VFU_GUEST_DIR || join(PACKAGE_ROOT, '.guest');
  const kit: GuestKit = {
    qemu: resolve(options.qemu ?? (env.QEMU || join(PACKAGE_ROOT, '.qemu', 'bin', 'qemu-system-x86_64'))),
    kernel: resolve(options.kernel ?? (env.VFU_GUEST_KERNEL || join(guestDir, 'vmlinuz'))),
    modulesDir: resolve(options.modulesDir ?? (env.VFU_GUEST_MODULES || join(guestDir, 'modules'))),
    busybox: resolve(options.busybox ?? (env.VFU_GUEST_BUSYBOX || join(guestDir, 'busybox'))),
  };
  const getGuest = `run \`bash ${join(PACKAGE_ROOT, 'scripts', 'get-guest.sh')}\``;
  const problems: string[] = [];
  if (!executable(kit.qemu)) {
    problems.push(`no QEMU at ${kit.qemu}: run \`bash ${join(PACKAGE_ROOT, 'scripts', 'get-qemu.sh')}\` or set QEMU`);
  }
  if (!existsSync(kit.kernel)) {
    problems.push(`no guest kernel at ${kit.kernel}: ${getGuest} or set VFU_GUEST_KERNEL`);
  }
  if (!existsSync(join(kit.modulesDir, 'kernel'))) {
    problems.push(`no kernel modules at ${kit.modulesDir}: ${getGuest} or set VFU_GUEST_MODULES`);
  }
  if (!executable(kit.busybox)) {
    problems.push(`no static busybox at ${kit.busybox}: ${getGuest} or set VFU_GUEST_BUSYBOX`);
  }
  if (problems.length > 0) {
    throw new Error(`the guest cannot boot: ${problems.join('; ')}`);
  }
  return kit;
}

const execFileAsync = promisify(execFile);

/**
 * Compiles a C program with `gcc -static` for use inside the guest (the
 * guest has no C library of its own) and returns the executable's bytes.
 * Runs gcc asynchronously, so in-process devices keep serving meanwhile.
 */
export async function compileStaticProgram(source: string, extraFlags: readonly string[] = []): Promise<Buffer> {
  const dir = mkdtempSync(join(tmpdir(), 'vfu-guest-cc-'));
  try {
    const sourcePath = join(dir, 'program.c');
    const output = join(dir, 'program');
    writeFileSync(sourcePath, source);
    try {
      await execFileAsync('gcc', ['-static', '-O2', '-Wall', '-o', output, sourcePath, ...extraFlags]);
    } catch (err) {
      const { stderr } = err as { stderr?: string };
      throw new Error(`gcc -static failed: ${stderr ?? String(err)}`);
    }
    return readFileSync(output);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
