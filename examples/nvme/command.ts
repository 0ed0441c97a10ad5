/** A 64-byte submission queue entry, decoded. */
export interface Command {
  readonly opcode: number;
  /** Fused operation (bits 9:8 of dword 0); this controller fuses nothing. */
  readonly fuse: number;
  /** PRP or SGL data transfer (bits 15:14 of dword 0); 0 is PRPs, the only kind supported. */
  readonly psdt: number;
  readonly cid: number;
  readonly nsid: number;
  readonly prp1: bigint;
  readonly prp2: bigint;
  /** Command dwords 10 to 15. */
  readonly cdw10: number;
  readonly cdw11: number;
  readonly cdw12: number;
  readonly cdw13: number;
  readonly cdw14: number;
  readonly cdw15: number;
}

/** Decodes the entry at `at` in `entries`. */
export function decodeCommand(entries: Buffer, at: number): Command {
  const dw0 = entries.readUInt32LE(at);
  return {
    opcode: dw0 & 0xff,
    fuse: (dw0 >>> 8) & 0x3,
    psdt: (dw0 >>> 14) & 0x3,
    cid: dw0 >>> 16,
    nsid: entries.readUInt32LE(at + 4),
    prp1: entries.readBigUInt64LE(at + 24),
    prp2: entries.readBigUInt64LE(at + 32),
    cdw10: entries.readUInt32LE(at + 40),
    cdw11: entries.readUInt32LE(at + 44),
    cdw12: entries.readUInt32LE(at + 48),
    cdw13: entries.readUInt32LE(at + 52),
    cdw14: entries.readUInt32LE(at + 56),
    cdw15: entries.readUInt32LE(at + 60),
  };
}

/** What a command completes with: dword 0 of the completion and its status. */
export interface Completion {
  readonly result: number;
  readonly status: number;
}

/** A command that completes later, or never (an Asynchronous Event Request waiting for an event). */
export const HELD = Symbol('held');
