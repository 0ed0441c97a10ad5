/**
 * The data structures the controller returns: Identify Controller,
 * Identify Namespace, the namespace identification descriptors, and the
 * log pages. Offsets are those of NVMe 1.4.
 */
import { CQES_LOG2, SQES_LOG2 } from './constants';
import { BLOCK_SIZE_LOG2 } from './namespace';

/** Who the controller says it is. */
export interface ControllerIdentity {
  readonly vendorId: number;
  /** Serial number, up to 20 ASCII characters. */
  readonly serial: string;
  /** Model number, up to 40 ASCII characters. */
  readonly model: string;
  /** Firmware revision, up to 8 ASCII characters. */
  readonly firmware: string;
}

/** Controller limits that Identify reports. */
export interface ControllerLimits {
  /** Maximum data transfer size as a power of two of the minimum page size. */
  readonly mdts: number;
  /** Outstanding Asynchronous Event Requests, 0-based. */
  readonly aerl: number;
  /** Error log entries, 0-based. */
  readonly elpe: number;
}

export const IDENTIFY_SIZE = 4096;
/** Optional Admin Command Support: bit 8, Doorbell Buffer Config. */
const OACS_DOORBELL_BUFFER_CONFIG = 1 << 8;
/** Optional NVM Command Support: bit 2 Dataset Management, bit 3 Write Zeroes. */
const ONCS_DSM_AND_WRITE_ZEROES = (1 << 2) | (1 << 3);
const CONTROLLER_TYPE_IO = 1;
const VERSION_1_4 = 0x00010400;

function ascii(target: Buffer, offset: number, length: number, text: string): void {
  target.fill(0x20, offset, offset + length);
  target.write(text.slice(0, length), offset, 'ascii');
}

/** Identify Controller (CNS 01h); `doorbellBuffer`: Doorbell Buffer Config is offered (OACS bit 8). */
export function identifyController(identity: ControllerIdentity, limits: ControllerLimits, namespaces: number, doorbellBuffer: boolean): Buffer {
  const data = Buffer.alloc(IDENTIFY_SIZE);
  data.writeUInt16LE(identity.vendorId, 0); // VID
  data.writeUInt16LE(identity.vendorId, 2); // SSVID
  ascii(data, 4, 20, identity.serial);
  ascii(data, 24, 40, identity.model);
  ascii(data, 64, 8, identity.firmware);
  data[77] = limits.mdts;
  data.writeUInt16LE(1, 78); // CNTLID
  data.writeUInt32LE(VERSION_1_4, 80);
  data[111] = CONTROLLER_TYPE_IO;
  data.writeUInt16LE(doorbellBuffer ? OACS_DOORBELL_BUFFER_CONFIG : 0, 256);
  data[258] = 3; // ACL: 4 Aborts at once
  data[259] = limits.aerl;
  data[260] = 0x03; // FRMW: slot 1 read-only, 1 slot
  data[261] = 0x00; // LPA: no per-namespace SMART, no effects log
  data[262] = limits.elpe;
  data.writeUInt16LE(343, 266); // WCTEMP, kelvin
  data.writeUInt16LE(373, 268); // CCTEMP
  data[512] = (SQES_LOG2 << 4) | SQES_LOG2; // SQES: required and maximum
  data[513] = (CQES_LOG2 << 4) | CQES_LOG2;
  data.writeUInt32LE(namespaces, 516); // NN
  data.writeUInt16LE(ONCS_DSM_AND_WRITE_ZEROES, 520);
  data[525] = 0x01; // VWC: a volatile write cache, flushed by Flush
  data.write(`nqn.2014-08.org.nvmexpress:uuid:${subsystemUuid(identity)}`, 768, 'ascii'); // SUBNQN
  data.writeUInt16LE(2500, 2048); // PSD0: 25 W, in centiwatts
  return data;
}

/** Identify Namespace (CNS 00h) of a namespace of `blocks` 512-byte blocks. */
export function identifyNamespace(blocks: number, nguid: Buffer): Buffer {
  const data = Buffer.alloc(IDENTIFY_SIZE);
  data.writeBigUInt64LE(BigInt(blocks), 0); // NSZE
  data.writeBigUInt64LE(BigInt(blocks), 8); // NCAP
  data.writeBigUInt64LE(BigInt(blocks), 16); // NUSE
  data[24] = 0x04; // NSFEAT: deallocated or unwritten logical block error reporting
  data[25] = 0; // NLBAF: one format
  data[26] = 0; // FLBAS: format 0
  data[33] = 0x09; // DLFEAT: deallocated blocks read as zeros, Write Zeroes may deallocate
  nguid.copy(data, 104); // NGUID
  data.writeUInt32LE(BLOCK_SIZE_LOG2 << 16, 128); // LBAF0: no metadata, 512-byte blocks
  return data;
}

/** Namespace Identification Descriptor list (CNS 03h): the NGUID. */
export function namespaceDescriptors(nguid: Buffer): Buffer {
  const data = Buffer.alloc(IDENTIFY_SIZE);
  data[0] = 0x2; // NIDT: NGUID
  data[1] = 16; // NIDL
  nguid.copy(data, 4);
  return data;
}

/** Active Namespace ID list (CNS 02h): namespaces above `after`. */
export function activeNamespaces(after: number, namespaces: number): Buffer {
  const data = Buffer.alloc(IDENTIFY_SIZE);
  let at = 0;
  for (let nsid = after + 1; nsid <= namespaces; nsid++, at += 4) {
    data.writeUInt32LE(nsid, at);
  }
  return data;
}

/** SMART / Health Information log page: a healthy drive at 40 °C. */
export function smartLog(hostReads: bigint, hostWrites: bigint): Buffer {
  const data = Buffer.alloc(512);
  data.writeUInt16LE(313, 1); // composite temperature, kelvin
  data[3] = 100; // available spare, percent
  data[4] = 10; // available spare threshold
  // Data units are thousands of 512-byte units, rounded up.
  data.writeBigUInt64LE((hostReads + 999n) / 1000n, 32);
  data.writeBigUInt64LE((hostWrites + 999n) / 1000n, 48);
  return data;
}

/** Firmware Slot Information log page: slot 1 active with the firmware revision. */
export function firmwareSlotLog(firmware: string): Buffer {
  const data = Buffer.alloc(512);
  data[0] = 0x01; // AFI: slot 1 active
  ascii(data, 8, 8, firmware);
  return data;
}

/** A stable UUID-shaped string derived from the serial number, for the subsystem NQN and the NGUID. */
export function subsystemUuid(identity: ControllerIdentity): string {
  const hex = nguidOf(identity).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** A 16-byte namespace GUID derived from vendor and serial number (FNV-1a over the bytes, four lanes). */
export function nguidOf(identity: ControllerIdentity): Buffer {
  const out = Buffer.alloc(16);
  const text = `${identity.vendorId}:${identity.serial}`;
  for (let lane = 0; lane < 4; lane++) {
    let hash = 0x811c9dc5 ^ lane;
    for (let i = 0; i < text.length; i++) {
      hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193) >>> 0;
    }
    out.writeUInt32BE(hash >>> 0, lane * 4);
  }
  return out;
}
