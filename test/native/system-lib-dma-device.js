// The device of system-lib-check.js's DMA check: a copy engine that reads
// guest memory with device.dma.read(), writes it back transformed with
// device.dma.write(), and raises MSI vector 0 when the job ends. Shared with
// the client in system-lib-dma-client.js for the register layout and data.
'use strict';

const REG = { SOURCE: 0x00, TARGET: 0x04, LENGTH: 0x08, GO: 0x0c, STATUS: 0x10 };
const JOB = { IDLE: 0, RUNNING: 1, DONE: 2, FAILED: 3 };

/** Deterministic bytes for a guest buffer. */
function pattern(length, seed) {
  return Buffer.from(Array.from({ length }, (_, i) => (i * 13 + seed * 31 + (i >> 8)) & 0xff));
}

/** What the device writes back: each byte inverted, in reverse order. */
function transform(data) {
  return Buffer.from(data).reverse().map((b) => b ^ 0xff);
}

/** Asserts two byte arrays are equal, naming the first difference rather than printing both. */
function sameBytes(actual, expected, what) {
  if (!(actual instanceof Uint8Array)) {
    throw new Error(`${what}: got ${actual}, not bytes`);
  }
  const a = Buffer.from(actual.buffer, actual.byteOffset, actual.length);
  if (a.equals(expected)) return;
  let at = 0;
  while (at < Math.min(a.length, expected.length) && a[at] === expected[at]) at++;
  throw new Error(`${what}: ${a.length} bytes, ${expected.length} expected, first difference at 0x${at.toString(16)}`);
}

/** The device class, from the package built into `lib`. */
function makeCopyEngine({ PciDevice, RegisterMap }) {
  return class CopyEngine extends PciDevice {
    /** Every job: what the device read, or why it failed. */
    jobs = [];

    regs = new RegisterMap({
      source: { offset: REG.SOURCE, width: 4, rw: true },
      target: { offset: REG.TARGET, width: 4, rw: true },
      length: { offset: REG.LENGTH, width: 4, rw: true },
      go: { offset: REG.GO, width: 4, write: () => this.start() },
      status: { offset: REG.STATUS, width: 4 },
    });

    constructor() {
      super({
        vendorId: 0x1b36,
        deviceId: 0x11e1,
        classCode: 0x058000,
        bars: [{ index: 0, size: 0x1000, handler: () => this.regs }],
        msi: { vectors: 1 },
      });
    }

    start() {
      const job = { source: this.regs.get('source'), target: this.regs.get('target'), length: this.regs.get('length') };
      this.jobs.push(job);
      this.regs.set('status', JOB.RUNNING);
      this.copy(job).then(
        () => this.finish(JOB.DONE),
        (err) => {
          job.error = err;
          this.finish(JOB.FAILED);
        },
      );
    }

    async copy(job) {
      job.seen = await this.dma.read(job.source, job.length);
      await this.dma.write(job.target, transform(job.seen));
    }

    finish(status) {
      this.regs.set('status', status);
      if (!this.msi(0)) {
        throw new Error('MSI vector 0 could not be raised');
      }
    }
  };
}

module.exports = { REG, JOB, pattern, transform, sameBytes, makeCopyEngine };
