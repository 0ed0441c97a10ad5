/**
 * The usual opening of a QEMU test: a QEMU attached to a running device,
 * ECAM on, the vfio-user function located, its BARs sized and assigned and
 * decoding plus bus mastering enabled; what a guest's firmware would have
 * done before a driver looks at the device.
 */
import type { QmpPciDevice } from 'vfio-user/guest';

import { Qemu, QemuOptions } from './qemu';
import { BarAllocator, PciFunction, PciHost } from './pci';

export interface Session {
  qemu: Qemu;
  pci: PciHost;
  /** The vfio-user device's function. */
  dev: PciFunction;
  /** The device as `query-pci` reported it before the BARs were assigned. */
  qmpInfo: QmpPciDevice;
}

export interface SessionOptions extends QemuOptions {
  /** Leave BARs unassigned and the command register alone. */
  noSetup?: boolean;
}

/** Finds the function whose qdev id is `deviceId` in `query-pci`. */
export async function locate(qemu: Qemu, deviceId = 'vfu0'): Promise<QmpPciDevice> {
  const all = await qemu.qmp.queryPci();
  const mine = all.find((d) => d.qdev_id === deviceId);
  if (mine === undefined) {
    throw new Error(`query-pci lists no device "${deviceId}"; QEMU output:\n${qemu.log}`);
  }
  return mine;
}

/** Sizes and assigns BARs, then enables I/O, memory decoding and bus mastering. */
export async function setUpFunction(dev: PciFunction, allocator = new BarAllocator()): Promise<void> {
  await dev.assignBars(allocator);
  await dev.enable();
}

/** Starts QEMU against `options.deviceSocket` and prepares the device. */
export async function openSession(options: SessionOptions): Promise<Session> {
  const qemu = await Qemu.start(options);
  try {
    const qmpInfo = await locate(qemu, options.deviceId);
    const pci = new PciHost(qemu.qtest);
    await pci.enableEcam();
    const dev = pci.fn({ bus: qmpInfo.bus, slot: qmpInfo.slot, fn: qmpInfo.function });
    if (!options.noSetup) {
      await setUpFunction(dev);
    }
    return { qemu, pci, dev, qmpInfo };
  } catch (err) {
    await qemu.kill();
    throw err;
  }
}

/**
 * QMP `system_reset`, then what firmware would redo: the reset also clears
 * the host bridge's PCIEXBAR (ECAM stops decoding) and every BAR and command
 * register, so ECAM is enabled again and, unless `setup` is false, the
 * device's BARs are assigned and enabled again.
 */
export async function resetMachine(session: Session, setup = true): Promise<void> {
  await session.qemu.qmp.systemReset();
  await session.pci.enableEcam();
  if (setup) {
    await setUpFunction(session.dev);
  }
}
