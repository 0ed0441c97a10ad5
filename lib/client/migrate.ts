/**
 * Moving a device from one server to another with two clients, the way a
 * VMM does it: pre-copy, stop-and-copy, resume on the destination, and the
 * config-space restore QEMU performs on the destination.
 *
 * @packageDocumentation
 */
import { CapabilityId, Msi, Msix, PciCommand, PciConfig, PciStatus, Region } from '../constants';
import type { VfioUserClient } from './client';
import type { InterruptLine } from './interrupt-line';

/** Options of {@link migrate}. */
export interface MigrateOptions {
  /** Read pre-copy data while the source still runs, when the source offers it (default true). */
  readonly preCopy?: boolean;
  /** Told of each chunk copied, with the phase it belongs to. */
  readonly onData?: (phase: 'pre-copy' | 'stop-copy', bytes: number) => void;
}

/** What {@link migrate} did. */
export interface MigrationResult {
  /** Bytes copied while the source ran. */
  readonly preCopyBytes: number;
  /** Bytes copied while it was stopped. */
  readonly stopCopyBytes: number;
  /** The source's config space, as it was restored onto the destination. */
  readonly configSpace: Buffer;
  /** The destination's interrupt lines the restore installed: MSI-X or MSI when enabled, else INTx when the device has a pin. */
  readonly interrupts: InterruptLine[];
}

const MSIX_CONTROL_HIGH_ENABLE = Msix.FLAGS_ENABLE >> 8;
const MSIX_CONTROL_HIGH_MASKALL = Msix.FLAGS_MASKALL >> 8;

/**
 * Reads the whole config space (as large as the server's config region).
 * Give `size` when the device is stopped: GET_REGION_INFO is then refused.
 */
export async function readConfigSpace(client: VfioUserClient, size?: number): Promise<Buffer> {
  const bytes = size ?? (await client.getRegionInfo(Region.CONFIG)).size;
  return Buffer.from(await client.readConfig(0, bytes));
}

/** Offset of the standard capability `id` in a config space image; undefined when absent. */
function findCapability(config: Buffer, id: number): number | undefined {
  if ((config.readUInt16LE(PciConfig.STATUS) & PciStatus.CAP_LIST) === 0) {
    return undefined;
  }
  const seen = new Set<number>();
  for (let at = config[PciConfig.CAPABILITY_LIST] & ~3; at !== 0 && at + 2 <= config.length && !seen.has(at); at = config[at + 1] & ~3) {
    seen.add(at);
    if (config[at] === id) {
      return at;
    }
  }
  return undefined;
}

/**
 * Replays a saved config space onto a device, after what QEMU does when it
 * restores a vfio device on the migration destination (while that device
 * is still RESUMING):
 *
 * 1. the command register, with I/O and memory decoding off;
 * 2. every other dword in config order from 0x00 to the end (extended
 *    config space included), each as one 4-byte write; the MSI-X Message
 *    Control goes with Enable and Function Mask clear, MSI's with Enable
 *    clear, and the status register is skipped (its error bits are
 *    write-1-to-clear);
 * 3. MSI: the eventfds (SET_IRQS), then Message Control as saved;
 *    INTx (neither enabled, an interrupt pin): its eventfd;
 *    MSI-X: one 2-byte write at the capability + 3 (Message Control's upper
 *    byte and the next byte) with Enable and Function Mask set, then the
 *    eventfds, then the same 2-byte write with the upper byte as saved,
 *    which puts back the function mask the source had;
 * 4. the command register as saved.
 *
 * Read-only bits in the image are written back too: a device that follows
 * the PCI specification ignores them. Resolves with the interrupt lines
 * installed.
 */
export async function restoreConfigSpace(client: VfioUserClient, saved: Buffer): Promise<InterruptLine[]> {
  const msix = findCapability(saved, CapabilityId.MSIX);
  const msi = findCapability(saved, CapabilityId.MSI);
  const command = saved.readUInt16LE(PciConfig.COMMAND);
  await client.write16(Region.CONFIG, PciConfig.COMMAND, command & ~(PciCommand.IO | PciCommand.MEMORY));
  for (let at = 0; at + 4 <= saved.length; at += 4) {
    if (at === PciConfig.COMMAND) {
      continue;
    }
    const dword = Buffer.from(saved.subarray(at, at + 4));
    if (msix !== undefined && at === msix) {
      dword[3] &= ~(MSIX_CONTROL_HIGH_ENABLE | MSIX_CONTROL_HIGH_MASKALL);
    }
    if (msi !== undefined && at === msi) {
      dword[2] &= ~Msi.FLAGS_ENABLE;
    }
    await client.writeConfig(at, dword);
  }
  let lines: InterruptLine[] = [];
  if (msix !== undefined && (saved.readUInt16LE(msix + Msix.FLAGS) & Msix.FLAGS_ENABLE) !== 0) {
    const high = saved[msix + 3];
    const next = saved[msix + 4];
    await client.writeConfig(msix + 3, Buffer.from([high | MSIX_CONTROL_HIGH_ENABLE | MSIX_CONTROL_HIGH_MASKALL, next]));
    lines = await client.enableInterrupts('msix', { configure: false });
    await client.writeConfig(msix + 3, Buffer.from([high, next]));
  } else if (msi !== undefined && (saved.readUInt16LE(msi + Msi.FLAGS) & Msi.FLAGS_ENABLE) !== 0) {
    lines = await client.enableInterrupts('msi', { configure: false });
    await client.writeConfig(msi + Msi.FLAGS, saved.subarray(msi + Msi.FLAGS, msi + Msi.FLAGS + 2));
  } else if (saved[PciConfig.INTERRUPT_PIN] !== 0) {
    lines = await client.enableInterrupts('intx', { configure: false });
  }
  await client.write16(Region.CONFIG, PciConfig.COMMAND, command);
  return lines;
}

/**
 * Migrates the device behind `source` to the (identical) device behind
 * `destination`: the destination goes to RESUMING; pre-copy data is copied
 * while the source runs (when offered, not turned off, and the source is
 * running: a stopped source is not started again); the source
 * stops (STOP_COPY) and the rest is copied; the source goes to STOP, where
 * its config space is read, and that is replayed onto the destination
 * ({@link restoreConfigSpace}); the destination runs. The source is left
 * in STOP, as a VMM leaves it.
 *
 * If anything fails, the source is moved back to the state it was in
 * (RUNNING, normally: it keeps serving) and the error is thrown; the destination is left as it is (a
 * DEVICE_RESET returns it to RUNNING).
 */
export async function migrate(source: VfioUserClient, destination: VfioUserClient, options: MigrateOptions = {}): Promise<MigrationResult> {
  const features = await source.getMigrationFeatures();
  const sourceState = await source.getMigrationState();
  await destination.getMigrationFeatures();
  // Asked of the destination, the same device: a stopped source refuses it.
  const { size: configSize } = await destination.getRegionInfo(Region.CONFIG);
  await destination.setMigrationState('resuming');
  let preCopyBytes = 0;
  let stopCopyBytes = 0;
  try {
    if (features.preCopy && options.preCopy !== false && sourceState === 'running') {
      await source.setMigrationState('pre-copy');
      for await (const chunk of source.migrationData()) {
        await destination.writeMigrationData(chunk);
        preCopyBytes += chunk.length;
        options.onData?.('pre-copy', chunk.length);
      }
    }
    await source.setMigrationState('stop-copy');
    for await (const chunk of source.migrationData()) {
      await destination.writeMigrationData(chunk);
      stopCopyBytes += chunk.length;
      options.onData?.('stop-copy', chunk.length);
    }
    // Config space is read in STOP: STOP_COPY admits no region access.
    await source.setMigrationState('stop');
    const configSpace = await readConfigSpace(source, configSize);
    const interrupts = await restoreConfigSpace(destination, configSpace);
    await destination.setMigrationState('running');
    return { preCopyBytes, stopCopyBytes, configSpace, interrupts };
  } catch (err) {
    if (source.connected) {
      await source.setMigrationState(sourceState).catch(() => undefined);
    }
    throw err;
  }
}
