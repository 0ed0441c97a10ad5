import { PciDevice, RegisterMap, type ResetKind } from 'vfio-user';

/** A countdown timer: load COUNT (ms), set CTRL.ENABLE; at zero STATUS.EXPIRED is set and MSI-X 0 fires. */
export class Timer extends PciDevice {
  private clock: NodeJS.Timeout | undefined;

  readonly regs = new RegisterMap({
    ctrl:   { offset: 0x0, width: 4, rw: 0x1, write: ({ current }) => this.run(current === 1) }, // bit 0: enable
    count:  { offset: 0x4, width: 4, rw: true },                                              // ms left
    status: { offset: 0x8, width: 4, w1c: 0x1 },                                              // bit 0: expired
  });

  constructor() {
    super({ vendorId: 0x1b36, deviceId: 0x0100, classCode: 0xff0000,
            bars: [{ index: 0, size: 0x1000, handler: () => this.regs }],
            msix: { vectors: 1, bar: 1 } });
  }

  private run(enabled: boolean): void {
    clearInterval(this.clock);
    this.clock = enabled ? setInterval(() => this.tick(), 1).unref() : undefined;
  }

  private tick(): void {
    const left = this.regs.get('count');
    if (left === 0) return;
    this.regs.set('count', left - 1);
    if (left === 1) {
      this.regs.setBits('status', 0x1);
      this.msix(0);
    }
  }

  override onReset(kind: ResetKind): void {
    if (kind !== 'lost-connection') this.run(false);
  }
}

export default (): Timer => new Timer();
