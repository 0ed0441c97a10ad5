/**
 * NVMe 1.4 numbers this controller uses: register offsets and fields,
 * opcodes, status codes. Names follow the specification's mnemonics.
 */

/** BAR0 controller registers. */
export const NvmeRegister = {
  CAP: 0x00,
  VS: 0x08,
  INTMS: 0x0c,
  INTMC: 0x10,
  CC: 0x14,
  CSTS: 0x1c,
  NSSR: 0x20,
  AQA: 0x24,
  ASQ: 0x28,
  ACQ: 0x30,
  /** First doorbell: SQ y tail at DOORBELLS + 2y * stride, CQ y head at DOORBELLS + (2y + 1) * stride. */
  DOORBELLS: 0x1000,
} as const;

/** CC (controller configuration) fields. */
export const Cc = {
  EN: 0x1,
  cssOf: (cc: number): number => (cc >>> 4) & 0x7,
  mpsOf: (cc: number): number => (cc >>> 7) & 0xf,
  amsOf: (cc: number): number => (cc >>> 11) & 0x7,
  shnOf: (cc: number): number => (cc >>> 14) & 0x3,
  iosqesOf: (cc: number): number => (cc >>> 16) & 0xf,
  iocqesOf: (cc: number): number => (cc >>> 20) & 0xf,
} as const;

/** CSTS (controller status) bits. */
export const Csts = {
  RDY: 0x1,
  /** Controller fatal status. */
  CFS: 0x2,
  SHST_PROCESSING: 0x1 << 2,
  SHST_COMPLETE: 0x2 << 2,
  SHST_MASK: 0x3 << 2,
} as const;

/** Admin command opcodes. */
export const AdminOpcode = {
  DELETE_IO_SQ: 0x00,
  CREATE_IO_SQ: 0x01,
  GET_LOG_PAGE: 0x02,
  DELETE_IO_CQ: 0x04,
  CREATE_IO_CQ: 0x05,
  IDENTIFY: 0x06,
  ABORT: 0x08,
  SET_FEATURES: 0x09,
  GET_FEATURES: 0x0a,
  ASYNC_EVENT_REQUEST: 0x0c,
  DOORBELL_BUFFER_CONFIG: 0x7c,
} as const;

/** NVM command set opcodes. */
export const IoOpcode = {
  FLUSH: 0x00,
  WRITE: 0x01,
  READ: 0x02,
  WRITE_ZEROES: 0x08,
  DATASET_MANAGEMENT: 0x09,
} as const;

/** Identify CNS values answered. */
export const Cns = {
  NAMESPACE: 0x00,
  CONTROLLER: 0x01,
  ACTIVE_NAMESPACES: 0x02,
  NAMESPACE_DESCRIPTORS: 0x03,
} as const;

/** Feature identifiers answered. */
export const FeatureId = {
  ARBITRATION: 0x01,
  POWER_MANAGEMENT: 0x02,
  TEMPERATURE_THRESHOLD: 0x04,
  ERROR_RECOVERY: 0x05,
  VOLATILE_WRITE_CACHE: 0x06,
  NUMBER_OF_QUEUES: 0x07,
  INTERRUPT_COALESCING: 0x08,
  INTERRUPT_VECTOR_CONFIG: 0x09,
  WRITE_ATOMICITY: 0x0a,
  ASYNC_EVENT_CONFIG: 0x0b,
} as const;

/** Log page identifiers answered. */
export const LogPage = {
  ERROR_INFORMATION: 0x01,
  SMART_HEALTH: 0x02,
  FIRMWARE_SLOT: 0x03,
} as const;

/**
 * Completion status: the 15-bit Status Field (SCT << 8 | SC), without the
 * phase tag. DNR (do not retry) is added where retrying cannot help.
 */
export const Status = {
  SUCCESS: 0x000,
  INVALID_OPCODE: 0x001,
  INVALID_FIELD: 0x002,
  COMMAND_ID_CONFLICT: 0x003,
  DATA_TRANSFER_ERROR: 0x004,
  INTERNAL_ERROR: 0x006,
  ABORTED_SQ_DELETION: 0x008,
  INVALID_NAMESPACE: 0x00b,
  PRP_OFFSET_INVALID: 0x013,
  LBA_OUT_OF_RANGE: 0x080,
  COMPLETION_QUEUE_INVALID: 0x100,
  INVALID_QUEUE_IDENTIFIER: 0x101,
  INVALID_QUEUE_SIZE: 0x102,
  ASYNC_EVENT_LIMIT_EXCEEDED: 0x105,
  INVALID_INTERRUPT_VECTOR: 0x108,
  INVALID_LOG_PAGE: 0x109,
  INVALID_QUEUE_DELETION: 0x10c,
  WRITE_FAULT: 0x280,
  UNRECOVERED_READ_ERROR: 0x281,
  /** Do Not Retry, OR-ed into a status. */
  DNR: 0x4000,
} as const;

/** Asynchronous event types and the error-status event infos this controller reports. */
export const AsyncEvent = {
  TYPE_ERROR: 0x0,
  INFO_INVALID_DOORBELL_REGISTER: 0x00,
  INFO_INVALID_DOORBELL_VALUE: 0x01,
} as const;

/** Submission and completion queue entry sizes (log2 of 64 and 16 bytes). */
export const SQ_ENTRY_SIZE = 64;
export const CQ_ENTRY_SIZE = 16;
export const SQES_LOG2 = 6;
export const CQES_LOG2 = 4;

/** Feature values cannot be saved across power cycles. */
export const FEATURE_NOT_SAVEABLE = 0x10d;

/** I/O queue pairs the controller offers. */
export const MAX_IO_QUEUES = 16;
/** Largest queue, in entries (CAP.MQES + 1). */
export const MAX_QUEUE_ENTRIES = 1024;
