/**
 * The controller registers at the start of BAR0 as the host sees them,
 * and how a write to them lands: which bits are writable, and the
 * write-1-to-set / write-1-to-clear pair INTMS / INTMC.
 */
import { NvmeRegister } from './constants';

/** Bytes of the register block (CAP to ACQ). */
export const REGISTER_BLOCK_SIZE = 0x38;

/** CC bits the host may set: EN, CSS, MPS, AMS, SHN, IOSQES, IOCQES. */
const CC_WRITABLE = 0x00fffff1;
/** AQA: ASQS and ACQS, 12 bits each. */
const AQA_WRITABLE = 0x0fff0fff;
/** ASQ / ACQ: bits 11:0 are reserved (the queues are page-aligned). */
const QUEUE_BASE_WRITABLE = ~0xfffn & 0xffff_ffff_ffff_ffffn;

/** The register values the controller state machine works from. */
export interface RegisterValues {
  cc: number;
  csts: number;
  intms: number;
  aqa: number;
  asq: bigint;
  acq: bigint;
}

/** What a register write changed. */
export interface RegisterWriteEffect {
  readonly ccChanged: boolean;
  readonly previousCc: number;
}

/** The register block's bytes for a read. */
export function registerImage(cap: bigint, version: number, values: RegisterValues): Buffer {
  const image = Buffer.alloc(REGISTER_BLOCK_SIZE);
  image.writeBigUInt64LE(cap, NvmeRegister.CAP);
  image.writeUInt32LE(version, NvmeRegister.VS);
  image.writeUInt32LE(values.intms, NvmeRegister.INTMS);
  image.writeUInt32LE(values.intms, NvmeRegister.INTMC);
  image.writeUInt32LE(values.cc, NvmeRegister.CC);
  image.writeUInt32LE(values.csts, NvmeRegister.CSTS);
  image.writeUInt32LE(values.aqa, NvmeRegister.AQA);
  image.writeBigUInt64LE(values.asq, NvmeRegister.ASQ);
  image.writeBigUInt64LE(values.acq, NvmeRegister.ACQ);
  return image;
}

function touches(offset: number, length: number, register: number, width: number): boolean {
  return offset < register + width && register < offset + length;
}

/**
 * Applies a host write of `data` at `offset` to `values`. Bytes that land
 * on read-only registers (CAP, VS, CSTS, NSSR: subsystem reset is not
 * offered) are dropped.
 */
export function applyRegisterWrite(values: RegisterValues, offset: number, data: Buffer, cap: bigint, version: number): RegisterWriteEffect {
  const before = registerImage(cap, version, values);
  const image = Buffer.from(before);
  const end = Math.min(offset + data.length, REGISTER_BLOCK_SIZE);
  if (offset < end) {
    data.copy(image, offset, 0, end - offset);
  }
  const length = data.length;
  const previousCc = values.cc;
  if (touches(offset, length, NvmeRegister.INTMS, 4)) {
    values.intms |= writtenBits(offset, data, NvmeRegister.INTMS);
  }
  if (touches(offset, length, NvmeRegister.INTMC, 4)) {
    values.intms &= ~writtenBits(offset, data, NvmeRegister.INTMC);
  }
  if (touches(offset, length, NvmeRegister.AQA, 4)) {
    values.aqa = image.readUInt32LE(NvmeRegister.AQA) & AQA_WRITABLE;
  }
  if (touches(offset, length, NvmeRegister.ASQ, 8)) {
    values.asq = image.readBigUInt64LE(NvmeRegister.ASQ) & QUEUE_BASE_WRITABLE;
  }
  if (touches(offset, length, NvmeRegister.ACQ, 8)) {
    values.acq = image.readBigUInt64LE(NvmeRegister.ACQ) & QUEUE_BASE_WRITABLE;
  }
  if (touches(offset, length, NvmeRegister.CC, 4)) {
    values.cc = (image.readUInt32LE(NvmeRegister.CC) & CC_WRITABLE) >>> 0;
  }
  values.intms >>>= 0;
  return { ccChanged: values.cc !== previousCc, previousCc };
}

/** The bits a write puts in a write-1 register: the bytes written, zeros for bytes not written. */
function writtenBits(offset: number, data: Buffer, register: number): number {
  let value = 0;
  for (let i = 0; i < 4; i++) {
    const at = register + i - offset;
    if (at >= 0 && at < data.length) {
      value |= data[at] << (8 * i);
    }
  }
  return value >>> 0;
}
