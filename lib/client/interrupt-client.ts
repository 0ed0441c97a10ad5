/**
 * The interrupt layer of {@link VfioUserClient}: eventfds installed with
 * SET_IRQS, masks, and turning an interrupt type on in config space as a
 * driver does.
 *
 * @packageDocumentation
 */
import { CapabilityId, Msi, Msix, PciCommand, PciConfig, Region, type EventInterruptKind, type InterruptKind } from '../constants';
import { ArgumentError } from '../errors';
import { irqIndex } from './arguments';
import { InterruptLine } from './interrupt-line';
import { Command, encodeU32s, IrqSetFlag } from './protocol';
import { RegionClient } from './region-client';

const IRQ_SET_SIZE = 20;

/** Interrupt requests of a {@link VfioUserClient}. */
export abstract class InterruptClient extends RegionClient {
  private readonly lines = new Map<string, InterruptLine>();

  /**
   * Installs eventfds for vectors `start` to `start + count - 1` of an
   * interrupt type (SET_IRQS, ACTION_TRIGGER | DATA_EVENTFD), replacing lines
   * installed before, and resolves with one {@link InterruptLine} per vector.
   * Messages carry no more eventfds than the server takes at once.
   *
   * Then, unless `configure` is false, it turns the interrupt type on in
   * config space as a driver would: MSI-X Enable (function unmasked), MSI
   * Enable with enough vectors, or INTx-disable cleared.
   */
  async enableInterrupts(
    kind: InterruptKind,
    options: { start?: number; count?: number; configure?: boolean } = {},
  ): Promise<InterruptLine[]> {
    const index = irqIndex(kind);
    const start = options.start ?? 0;
    const count = options.count ?? (await this.getIrqInfo(index)).count - start;
    if (count <= 0) {
      throw new ArgumentError('start', `${start} leaves no ${kind} vectors to enable`, 'DEVICE_SET_IRQS');
    }
    const lines: InterruptLine[] = [];
    try {
      for (let v = start; v < start + count; v++) {
        lines.push(new InterruptLine(kind, v));
      }
      const perMessage = Math.max(1, this.serverCapabilities.maxMsgFds);
      for (let first = 0; first < count; first += perMessage) {
        const batch = lines.slice(first, first + perMessage);
        await this.request(
          Command.DEVICE_SET_IRQS,
          encodeU32s(IRQ_SET_SIZE, IrqSetFlag.ACTION_TRIGGER | IrqSetFlag.DATA_EVENTFD, index, start + first, batch.length),
          { fds: batch.map((line) => line.fd) },
        );
      }
      if (options.configure !== false) {
        await this.configureInterrupts(kind, start + count);
      }
    } catch (err) {
      lines.forEach((line) => line.close());
      throw err;
    }
    for (const line of lines) {
      const key = `${index}:${line.vector}`;
      this.lines.get(key)?.close();
      this.lines.set(key, line);
    }
    return lines;
  }


  /** Turns an interrupt type on in config space; see {@link InterruptClient.enableInterrupts}. */
  private async configureInterrupts(kind: InterruptKind, vectors: number): Promise<void> {
    if (kind === 'intx') {
      const command = await this.read16(Region.CONFIG, PciConfig.COMMAND);
      await this.write16(Region.CONFIG, PciConfig.COMMAND, command & ~PciCommand.INTX_DISABLE);
      return;
    }
    const cap = await this.findCapability(kind === 'msix' ? CapabilityId.MSIX : CapabilityId.MSI);
    if (cap === undefined) {
      return;
    }
    const flags = await this.read16(Region.CONFIG, cap + Msix.FLAGS);
    if (kind === 'msix') {
      await this.write16(Region.CONFIG, cap + Msix.FLAGS, (flags & ~Msix.FLAGS_MASKALL) | Msix.FLAGS_ENABLE);
      return;
    }
    const capable = (flags & Msi.FLAGS_QMASK) >> 1;
    const enabled = Math.min(capable, Math.ceil(Math.log2(vectors)));
    await this.write16(Region.CONFIG, cap + Msi.FLAGS, (flags & ~Msi.FLAGS_QSIZE) | (enabled << 4) | Msi.FLAGS_ENABLE);
  }

  /** Removes every eventfd of an interrupt type (SET_IRQS with count 0) and closes its lines. */
  async disableInterrupts(kind: InterruptKind | EventInterruptKind): Promise<void> {
    const index = irqIndex(kind);
    await this.request(Command.DEVICE_SET_IRQS, encodeU32s(IRQ_SET_SIZE, IrqSetFlag.ACTION_TRIGGER | IrqSetFlag.DATA_NONE, index, 0, 0));
    for (const [key, line] of [...this.lines]) {
      if (key.startsWith(`${index}:`)) {
        line.close();
        this.lines.delete(key);
      }
    }
  }

  /**
   * Installs an eventfd for the device's error (`'err'`) or device request
   * (`'req'`) interrupt, as QEMU does when the device has one.
   */
  async enableEventInterrupt(kind: EventInterruptKind): Promise<InterruptLine> {
    const index = irqIndex(kind);
    const line = new InterruptLine(kind, 0);
    try {
      await this.request(
        Command.DEVICE_SET_IRQS,
        encodeU32s(IRQ_SET_SIZE, IrqSetFlag.ACTION_TRIGGER | IrqSetFlag.DATA_EVENTFD, index, 0, 1),
        { fds: [line.fd] },
      );
    } catch (err) {
      line.close();
      throw err;
    }
    this.lines.get(`${index}:0`)?.close();
    this.lines.set(`${index}:0`, line);
    return line;
  }

  /** Masks vectors (SET_IRQS ACTION_MASK | DATA_NONE). */
  async maskInterrupts(kind: InterruptKind, start = 0, count = 1): Promise<void> {
    await this.setIrqsAction(IrqSetFlag.ACTION_MASK, kind, start, count);
  }

  /** Unmasks vectors (SET_IRQS ACTION_UNMASK | DATA_NONE); pending ones are delivered. */
  async unmaskInterrupts(kind: InterruptKind, start = 0, count = 1): Promise<void> {
    await this.setIrqsAction(IrqSetFlag.ACTION_UNMASK, kind, start, count);
  }

  /** Fires vectors from the client side (SET_IRQS ACTION_TRIGGER | DATA_NONE). */
  async triggerInterrupts(kind: InterruptKind, start = 0, count = 1): Promise<void> {
    await this.setIrqsAction(IrqSetFlag.ACTION_TRIGGER, kind, start, count);
  }

  /** SET_IRQS of `action` | DATA_NONE on vectors `start` to `start + count - 1`. */
  private async setIrqsAction(action: number, kind: InterruptKind, start: number, count: number): Promise<void> {
    await this.request(Command.DEVICE_SET_IRQS, encodeU32s(IRQ_SET_SIZE, action | IrqSetFlag.DATA_NONE, irqIndex(kind), start, count));
  }

  /** Closes every interrupt line; the connection has ended. */
  protected releaseResources(): void {
    for (const line of this.lines.values()) {
      line.close();
    }
    this.lines.clear();
  }
}
