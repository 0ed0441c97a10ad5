/**
 * The guest of the block benchmark: one TCG guest with every disk under
 * test attached at a fixed PCI slot, our devices served from this process
 * and QEMU's own on the same raw file. The guest script waits for the
 * disks, prints which block device sits at which slot, then runs one
 * workload (bench/block/block-workload.c) per line the host types, so the
 * host can sample CPU times right around each measurement.
 */
import { readdirSync, readFileSync } from 'node:fs';

import type { PciDevice } from 'vfio-user';
import { Guest, type GuestDevice } from 'vfio-user/guest';

/** A disk the guest sees: ours (a PciDevice served here) or one of QEMU's built-in devices. */
export interface BlockDisk {
  /** PCI slot on the guest's root bus; the script finds the block device by it. */
  readonly slot: number;
  /** Our device, served from this process over vfio-user. */
  readonly device?: PciDevice;
  /** Or QEMU's built-in device: the -device driver and its extra properties (the drive is added). */
  readonly builtIn?: { driver: string; properties?: string };
}

/** What one workload run reported. */
export interface WorkloadResult {
  ops: number;
  bytes: number;
  seconds: number;
}

/** One workload: `block-workload DEVICE MODE BLOCK_BYTES MILLISECONDS THREADS`. */
export interface Workload {
  readonly mode: 'seqread' | 'seqwrite' | 'randread';
  readonly blockBytes: number;
  readonly milliseconds: number;
  readonly threads: number;
}

const GUEST_SCRIPT = (disks: number): string => `
for i in $(seq 1 300); do
  [ $(ls /sys/block | grep -c -E '^(vd|nvme)') -ge ${disks} ] && break
  sleep 0.2
done
for b in /sys/block/vd* /sys/block/nvme*; do
  [ -e "$b" ] && echo "disk $(basename $b) $(readlink -f $b/device)"
done
echo disks-listed
while read -r cmd id args; do
  case "$cmd" in
    run) echo "result $id $(/bin/block-workload $args 2>&1 | tr '\\n' ' ')" ;;
    quit) exit 0 ;;
  esac
done
exit 3
`;

/** The running guest and its disks by slot. */
export class BlockGuest {
  private nextId = 1;

  private constructor(
    private readonly guest: Guest,
    /** Guest block device (e.g. /dev/vda) by PCI slot. */
    private readonly devices: Map<number, string>,
    /** QEMU's process id, for its CPU time. */
    readonly qemuPid: number,
  ) {}

  /**
   * Boots the guest with `disks` on `image` and waits until it has listed
   * them. `sharedMemory` false makes our devices reach guest memory by DMA
   * messages.
   */
  static async start(image: string, disks: readonly BlockDisk[], workload: Buffer, sharedMemory: boolean): Promise<BlockGuest> {
    const devices: GuestDevice[] = [];
    const qemuArgs: string[] = [];
    for (const disk of disks) {
      const addr = `${disk.slot.toString(16)}.0`;
      if (disk.device !== undefined) {
        devices.push({ device: disk.device, id: `vfu${disk.slot}`, properties: { addr } });
      } else if (disk.builtIn !== undefined) {
        // Image locking off: several devices open the one file, never at the same time.
        qemuArgs.push('-drive', `if=none,id=drive${disk.slot},file=${image},format=raw,file.locking=off`,
          '-device', `${disk.builtIn.driver},drive=drive${disk.slot},addr=${addr}${disk.builtIn.properties ?? ''}`);
      }
    }
    const guest = await Guest.start({
      devices,
      sharedMemory,
      memoryMiB: 256,
      modules: ['virtio_pci', 'virtio_blk'],
      files: { '/bin/block-workload': { data: workload, mode: 0o755 } },
      script: GUEST_SCRIPT(disks.length),
      qemuArgs,
      timeoutMs: 3600000,
    });
    try {
      await guest.waitForOutput('disks-listed\n', 300000);
      const bySlot = new Map<number, string>();
      for (const [, name, path] of guest.output.matchAll(/^disk (\S+) (\S+)$/gm)) {
        const slot = /0000:00:([0-9a-f]{2})\.0/.exec(path);
        if (slot !== null) {
          bySlot.set(parseInt(slot[1], 16), `/dev/${name}`);
        }
      }
      const missing = disks.filter((d) => !bySlot.has(d.slot)).map((d) => d.slot);
      if (missing.length > 0) {
        throw new Error(`the guest has no block device at slot(s) ${missing.join(', ')}:\n${guest.output}\n${guest.deviceLog.join('\n')}`);
      }
      return new BlockGuest(guest, bySlot, findQemuPid());
    } catch (err) {
      await guest.stop();
      throw err;
    }
  }

  /** Runs `workload` on the disk at `slot`; rejects with the guest's message when it fails. */
  async run(slot: number, workload: Workload): Promise<WorkloadResult> {
    const id = this.nextId++;
    const { mode, blockBytes, milliseconds, threads } = workload;
    this.guest.send(`run ${id} ${this.devices.get(slot)} ${mode} ${blockBytes} ${milliseconds} ${threads}\n`);
    const [, text] = await this.guest.waitForOutput(new RegExp(`^result ${id} (.*)\n`, 'm'), milliseconds + 120000);
    const fields = /ops=(\d+) bytes=(\d+) ns=(\d+)/.exec(text);
    if (fields === null) {
      throw new Error(`block-workload on slot ${slot} (${mode}) failed: ${text}\n${this.guest.output.slice(-2000)}\n${this.guest.deviceLog.slice(-20).join('\n')}`);
    }
    return { ops: Number(fields[1]), bytes: Number(fields[2]), seconds: Number(fields[3]) / 1e9 };
  }

  /** What our servers logged (warnings and errors), for the report. */
  get deviceLog(): readonly string[] {
    return this.guest.deviceLog;
  }

  /** Ends the script, then tears the guest down. */
  async stop(): Promise<void> {
    this.guest.send('quit\n');
    await Promise.race([this.guest.wait().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 10000))]);
    await this.guest.stop();
  }
}

/** The QEMU child of this process (the guest harness started it). */
function findQemuPid(): number {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) {
      continue;
    }
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // By its command line: QEMU may run under its own loader (scripts/get-qemu.sh), which names the process.
      if (Number(fields[1]) === process.pid && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('qemu-system')) {
        return Number(entry);
      }
    } catch {
      // gone meanwhile
    }
  }
  throw new Error('cannot find the QEMU process of the guest');
}

/** CPU seconds (user and system, every thread, exited ones included) of process `pid`. */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticksPerSecond = 100;
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
}
