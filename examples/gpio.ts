/**
 * A 16-input / 16-output GPIO card.
 *
 * BAR0: 256 bytes of I/O space, 16-bit registers:
 *
 * | Offset | Name       | Access | Meaning                                           |
 * | ------ | ---------- | ------ | ------------------------------------------------- |
 * | 0x00   | INPUT      | RO     | level of input pins 0-15                          |
 * | 0x04   | OUTPUT     | RW     | level driven on output pins 0-15                  |
 * | 0x08   | IRQ_ENABLE | RW     | bit n: interrupt when input n changes             |
 * | 0x0c   | IRQ_STATUS | RW1C   | bit n: input n changed while enabled; write 1 to clear |
 *
 * INTA# is raised whenever an enabled input changes. The inputs are set from
 * TypeScript with {@link GpioCard.setInputs} or {@link GpioCard.setInput}.
 *
 * It migrates: the library carries the registers, the card its input levels.
 *
 * Serve it with `npx vfio-user serve examples/gpio.ts --socket /tmp/gpio.sock`.
 */
import { PciDevice, RegisterMap } from 'vfio-user';

/** Register offsets in BAR0. */
export const GpioRegister = { INPUT: 0x00, OUTPUT: 0x04, IRQ_ENABLE: 0x08, IRQ_STATUS: 0x0c } as const;

/** The GPIO card. */
export class GpioCard extends PciDevice {
  /** Input pin levels, bit n for pin n. */
  private levels = 0;

  /** BAR0's registers. */
  readonly regs = new RegisterMap({
    input: { offset: GpioRegister.INPUT, width: 2, read: () => this.levels },
    output: { offset: GpioRegister.OUTPUT, width: 2, rw: 0xffff, write: ({ current }) => this.onOutputs(current) },
    irqEnable: { offset: GpioRegister.IRQ_ENABLE, width: 2, rw: 0xffff },
    irqStatus: { offset: GpioRegister.IRQ_STATUS, width: 2, w1c: 0xffff },
  });

  constructor() {
    super({
      vendorId: 0x1b36,
      deviceId: 0x1101,
      classCode: 0x088000, // base system peripheral, other
      intx: true,
      bars: [{ index: 0, size: 256, memory: false, handler: () => this.regs }],
      migration: {
        save: () => Buffer.from([this.levels & 0xff, this.levels >> 8]),
        load: (state) => {
          this.levels = state.readUInt16LE(0);
        },
      },
    });
  }

  /** Input pin levels, bit n for pin n. */
  get inputs(): number {
    return this.levels;
  }

  /** Levels the guest drives on the output pins. */
  get outputs(): number {
    return this.regs.get('output');
  }

  /** Sets every input pin; enabled pins that change raise an interrupt. */
  setInputs(levels: number): void {
    const changed = (this.levels ^ levels) & 0xffff;
    this.levels = levels & 0xffff;
    const events = changed & this.regs.get('irqEnable');
    if (events !== 0) {
      this.regs.setBits('irqStatus', events);
      this.intx();
    }
  }

  /** Sets one input pin. */
  setInput(pin: number, high: boolean): void {
    const bit = 1 << pin;
    this.setInputs(high ? this.levels | bit : this.levels & ~bit);
  }

  /** Hook: the guest wrote the OUTPUT register. */
  onOutputs(levels: number): void {
    void levels;
  }
}

/** The CLI serves what the default export makes. */
export default (): GpioCard => new GpioCard();
