/**
 * The admin command set: Identify, Get Log Page, Get / Set Features,
 * Create / Delete I/O queues, Abort, Asynchronous Event Request and
 * Doorbell Buffer Config. Every field the host gives is checked; a bad one
 * completes the command with the status the specification names for it.
 */
import { HELD, type Command, type Completion } from './command';
import { CommandError } from './command-error';
import { AdminOpcode, Cc, Cns, FEATURE_NOT_SAVEABLE, FeatureId, LogPage, MAX_IO_QUEUES, MAX_QUEUE_ENTRIES, Status } from './constants';
import type { NvmeController } from './controller';
import {
  activeNamespaces,
  firmwareSlotLog,
  identifyController,
  identifyNamespace,
  namespaceDescriptors,
  nguidOf,
  smartLog,
  type ControllerLimits,
} from './identify';
import { walkPrps, writeSegments } from './prp';
import { CompletionQueue, SubmissionQueue } from './queues';

/** Identify and log limits; MDTS 8 is 1 MiB at 4 KiB pages. */
export const LIMITS: ControllerLimits = { mdts: 8, aerl: 3, elpe: 3 };
const ERROR_LOG_ENTRY_SIZE = 64;
const ALL_NAMESPACES = 0xffffffff;
const DONE: Completion = { result: 0, status: Status.SUCCESS };

/** Values of the features before the host sets them. */
function defaultFeatures(): Map<number, number> {
  const queues = MAX_IO_QUEUES - 1;
  return new Map([
    [FeatureId.ARBITRATION, 0],
    [FeatureId.POWER_MANAGEMENT, 0],
    [FeatureId.TEMPERATURE_THRESHOLD, 343],
    [FeatureId.ERROR_RECOVERY, 0],
    [FeatureId.VOLATILE_WRITE_CACHE, 1],
    [FeatureId.NUMBER_OF_QUEUES, (queues << 16) | queues],
    [FeatureId.INTERRUPT_COALESCING, 0],
    [FeatureId.INTERRUPT_VECTOR_CONFIG, 0],
    [FeatureId.WRITE_ATOMICITY, 0],
    [FeatureId.ASYNC_EVENT_CONFIG, 0],
  ]);
}

function fail(status: number, why: string): never {
  throw new CommandError(status, why);
}

/** The admin queue's commands, and the controller state only they change. */
export class AdminCommands {
  /** @internal Current feature values. */
  features = defaultFeatures();
  /** @internal Command IDs of Asynchronous Event Requests waiting for an event. */
  heldEventRequests: number[] = [];
  /** @internal Events no request was waiting for: completion dword 0 of each. */
  pendingEvents: number[] = [];

  constructor(private readonly controller: NvmeController) {}

  /** A controller reset: features to defaults, held requests and pending events dropped. */
  reset(): void {
    this.features = defaultFeatures();
    this.heldEventRequests = [];
    this.pendingEvents = [];
  }

  /** Reports an asynchronous event through a held request, or keeps it for the next one. */
  reportEvent(type: number, info: number): void {
    const dword0 = type | (info << 8) | (LogPage.ERROR_INFORMATION << 16);
    const cid = this.heldEventRequests.shift();
    const adminQueue = this.controller.submissionQueues[0];
    if (cid !== undefined && adminQueue !== undefined) {
      this.controller.finish(adminQueue, cid, { result: dword0, status: Status.SUCCESS });
    } else if (!this.pendingEvents.includes(dword0)) {
      this.pendingEvents.push(dword0);
    }
  }

  /** Runs one admin command. */
  async execute(command: Command): Promise<Completion | typeof HELD> {
    if (command.fuse !== 0 || command.psdt !== 0) {
      fail(Status.INVALID_FIELD | Status.DNR, 'fused operations and SGLs are not supported');
    }
    switch (command.opcode) {
      case AdminOpcode.IDENTIFY: return this.identify(command);
      case AdminOpcode.GET_LOG_PAGE: return this.getLogPage(command);
      case AdminOpcode.SET_FEATURES: return this.setFeatures(command);
      case AdminOpcode.GET_FEATURES: return this.getFeatures(command);
      case AdminOpcode.CREATE_IO_CQ: return this.createCompletionQueue(command);
      case AdminOpcode.CREATE_IO_SQ: return this.createSubmissionQueue(command);
      case AdminOpcode.DELETE_IO_SQ: return this.deleteSubmissionQueue(command);
      case AdminOpcode.DELETE_IO_CQ: return this.deleteCompletionQueue(command);
      case AdminOpcode.ABORT: return { result: 1, status: Status.SUCCESS }; // bit 0: not aborted; commands run to completion
      case AdminOpcode.ASYNC_EVENT_REQUEST: return this.asyncEventRequest(command);
      case AdminOpcode.DOORBELL_BUFFER_CONFIG: return this.doorbellBufferConfig(command);
      default: return fail(Status.INVALID_OPCODE | Status.DNR, 'unknown admin opcode');
    }
  }

  /** Copies a data structure to the command's PRPs. */
  private async send(command: Command, data: Buffer): Promise<Completion> {
    const { controller } = this;
    const segments = await walkPrps(controller.dma, command.prp1, command.prp2, data.length, controller.pageSize);
    await writeSegments(controller.dma, segments, data);
    return DONE;
  }

  private checkNamespace(nsid: number): void {
    if (nsid !== 1) {
      fail(Status.INVALID_NAMESPACE | Status.DNR, `namespace ${nsid} does not exist`);
    }
  }

  private identify(command: Command): Promise<Completion> {
    const { controller } = this;
    const nguid = nguidOf(controller.identity);
    switch (command.cdw10 & 0xff) {
      case Cns.CONTROLLER:
        return this.send(command, identifyController(controller.identity, LIMITS, 1, controller.options.doorbellBuffer));
      case Cns.NAMESPACE:
        this.checkNamespace(command.nsid);
        return this.send(command, identifyNamespace(controller.namespace.blocks, nguid));
      case Cns.ACTIVE_NAMESPACES:
        if (command.nsid >= 0xfffffffe) {
          fail(Status.INVALID_NAMESPACE | Status.DNR, `no active namespace list after ${command.nsid}`);
        }
        return this.send(command, activeNamespaces(command.nsid, 1));
      case Cns.NAMESPACE_DESCRIPTORS:
        this.checkNamespace(command.nsid);
        return this.send(command, namespaceDescriptors(nguid));
      default:
        return fail(Status.INVALID_FIELD | Status.DNR, `CNS 0x${(command.cdw10 & 0xff).toString(16)} is not supported`);
    }
  }

  private getLogPage(command: Command): Promise<Completion> {
    const pageId = command.cdw10 & 0xff;
    const dwords = (((command.cdw11 & 0xffff) << 16) | (command.cdw10 >>> 16)) + 1;
    const bytes = dwords * 4;
    const offset = command.cdw12 + command.cdw13 * 2 ** 32;
    if (![0, 1, ALL_NAMESPACES].includes(command.nsid)) {
      fail(Status.INVALID_NAMESPACE | Status.DNR, `log page for namespace ${command.nsid}`);
    }
    let page: Buffer;
    if (pageId === LogPage.ERROR_INFORMATION) {
      page = Buffer.alloc((LIMITS.elpe + 1) * ERROR_LOG_ENTRY_SIZE);
    } else if (pageId === LogPage.SMART_HEALTH) {
      page = smartLog(this.controller.io.blocksRead, this.controller.io.blocksWritten);
    } else if (pageId === LogPage.FIRMWARE_SLOT) {
      page = firmwareSlotLog(this.controller.identity.firmware);
    } else {
      return fail(Status.INVALID_LOG_PAGE | Status.DNR, `log page 0x${pageId.toString(16)} is not supported`);
    }
    if (offset % 4 !== 0 || offset >= page.length || bytes > maxTransfer()) {
      fail(Status.INVALID_FIELD | Status.DNR, `log page 0x${pageId.toString(16)}: ${bytes} bytes at offset ${offset}`);
    }
    const data = Buffer.alloc(bytes);
    page.copy(data, 0, offset);
    return this.send(command, data);
  }

  private setFeatures(command: Command): Completion {
    const featureId = command.cdw10 & 0xff;
    const value = command.cdw11 >>> 0;
    if ((command.cdw10 & 0x80000000) !== 0) {
      fail(FEATURE_NOT_SAVEABLE | Status.DNR, 'features are not saveable');
    }
    if (!this.features.has(featureId)) {
      fail(Status.INVALID_FIELD | Status.DNR, `feature 0x${featureId.toString(16)} is not supported`);
    }
    switch (featureId) {
      case FeatureId.NUMBER_OF_QUEUES: {
        if ((value & 0xffff) === 0xffff || value >>> 16 === 0xffff) {
          fail(Status.INVALID_FIELD | Status.DNR, 'number of queues 65536 requested');
        }
        // Whatever was asked, the controller has MAX_IO_QUEUES of each and says so.
        return { result: this.features.get(featureId)!, status: Status.SUCCESS };
      }
      case FeatureId.POWER_MANAGEMENT:
        if ((value & 0x1f) !== 0) {
          fail(Status.INVALID_FIELD | Status.DNR, `power state ${value & 0x1f}: only state 0 exists`);
        }
        break;
      case FeatureId.INTERRUPT_VECTOR_CONFIG:
        if ((value & 0xffff) > MAX_IO_QUEUES) {
          fail(Status.INVALID_FIELD | Status.DNR, `interrupt vector ${value & 0xffff} does not exist`);
        }
        break;
      case FeatureId.VOLATILE_WRITE_CACHE:
        this.features.set(featureId, value & 1);
        return DONE;
      default:
        break;
    }
    this.features.set(featureId, value);
    return DONE;
  }

  private getFeatures(command: Command): Completion {
    const featureId = command.cdw10 & 0xff;
    const select = (command.cdw10 >>> 8) & 0x7;
    const current = this.features.get(featureId);
    if (current === undefined || select > 3) {
      return fail(Status.INVALID_FIELD | Status.DNR, `feature 0x${featureId.toString(16)} select ${select}`);
    }
    if (select === 3) {
      return { result: 0x4, status: Status.SUCCESS }; // changeable, not saveable, not per namespace
    }
    const value = select === 1 ? defaultFeatures().get(featureId)! : current;
    return { result: value, status: Status.SUCCESS };
  }

  private checkNewQueue(command: Command, existing: unknown): { id: number; entries: number; base: number } {
    const id = command.cdw10 & 0xffff;
    const entries = (command.cdw10 >>> 16) + 1;
    if (id === 0 || id > MAX_IO_QUEUES || existing !== undefined) {
      fail(Status.INVALID_QUEUE_IDENTIFIER | Status.DNR, `queue ${id} cannot be created`);
    }
    if (entries < 2 || entries > MAX_QUEUE_ENTRIES) {
      fail(Status.INVALID_QUEUE_SIZE | Status.DNR, `queue of ${entries} entries`);
    }
    if ((command.cdw11 & 1) === 0) {
      fail(Status.INVALID_FIELD | Status.DNR, 'queues must be physically contiguous (CAP.CQR)');
    }
    const { pageSize } = this.controller;
    if (command.prp1 % BigInt(pageSize) !== 0n || command.prp1 > BigInt(Number.MAX_SAFE_INTEGER)) {
      fail(Status.INVALID_FIELD | Status.DNR, `queue base 0x${command.prp1.toString(16)} is not page-aligned memory`);
    }
    return { id, entries, base: Number(command.prp1) };
  }

  private createCompletionQueue(command: Command): Completion {
    const { controller } = this;
    const { id, entries, base } = this.checkNewQueue(command, controller.completionQueues[command.cdw10 & 0xffff]);
    const vector = command.cdw11 >>> 16;
    if (vector > MAX_IO_QUEUES) {
      fail(Status.INVALID_INTERRUPT_VECTOR | Status.DNR, `interrupt vector ${vector} does not exist`);
    }
    if (Cc.iocqesOf(controller.registers.cc) !== 4) {
      fail(Status.INVALID_FIELD | Status.DNR, 'CC.IOCQES is not 16 bytes');
    }
    const queue = new CompletionQueue(id, base, entries, (command.cdw11 & 2) !== 0, vector);
    queue.shadow = controller.shadowSlots(id, true);
    controller.completionQueues[id] = queue;
    return DONE;
  }

  private createSubmissionQueue(command: Command): Completion {
    const { controller } = this;
    const { id, entries, base } = this.checkNewQueue(command, controller.submissionQueues[command.cdw10 & 0xffff]);
    const cqId = command.cdw11 >>> 16;
    const cq = cqId === 0 ? undefined : controller.completionQueues[cqId];
    if (cq === undefined) {
      fail(Status.COMPLETION_QUEUE_INVALID | Status.DNR, `completion queue ${cqId} does not exist`);
    }
    if (Cc.iosqesOf(controller.registers.cc) !== 6) {
      fail(Status.INVALID_FIELD | Status.DNR, 'CC.IOSQES is not 64 bytes');
    }
    const queue = new SubmissionQueue(id, base, entries, cqId);
    queue.shadow = controller.shadowSlots(id, false);
    controller.submissionQueues[id] = queue;
    cq.submissionQueues.add(id);
    return DONE;
  }

  /** Commands still in flight on the queue complete now as aborted; their late results are dropped. */
  private deleteSubmissionQueue(command: Command): Completion {
    const { controller } = this;
    const id = command.cdw10 & 0xffff;
    const queue = id === 0 ? undefined : controller.submissionQueues[id];
    if (queue === undefined) {
      return fail(Status.INVALID_QUEUE_IDENTIFIER | Status.DNR, `submission queue ${id} does not exist`);
    }
    queue.shadow = undefined; // no fetch again from what is going away
    for (const cid of [...queue.inFlight.keys()]) {
      controller.finish(queue, cid, { result: 0, status: Status.ABORTED_SQ_DELETION });
    }
    controller.submissionQueues[id] = undefined;
    controller.completionQueues[queue.cqId]?.submissionQueues.delete(id);
    return DONE;
  }

  private deleteCompletionQueue(command: Command): Completion {
    const { controller } = this;
    const id = command.cdw10 & 0xffff;
    const queue = id === 0 ? undefined : controller.completionQueues[id];
    if (queue === undefined) {
      return fail(Status.INVALID_QUEUE_IDENTIFIER | Status.DNR, `completion queue ${id} does not exist`);
    }
    if (queue.submissionQueues.size > 0) {
      fail(Status.INVALID_QUEUE_DELETION | Status.DNR, `completion queue ${id} still has submission queues`);
    }
    controller.completionQueues[id] = undefined;
    return DONE;
  }

  private asyncEventRequest(command: Command): Completion | typeof HELD {
    const event = this.pendingEvents.shift();
    if (event !== undefined) {
      return { result: event, status: Status.SUCCESS };
    }
    if (this.heldEventRequests.length > LIMITS.aerl) {
      fail(Status.ASYNC_EVENT_LIMIT_EXCEEDED | Status.DNR, `more than ${LIMITS.aerl + 1} event requests`);
    }
    this.heldEventRequests.push(command.cid);
    return HELD;
  }

  /** Shadow doorbells (PRP1) and event indexes (PRP2): one page each, page-aligned. I/O queues use them from now on. */
  private doorbellBufferConfig(command: Command): Completion {
    const { controller } = this;
    if (!controller.options.doorbellBuffer) {
      fail(Status.INVALID_OPCODE | Status.DNR, 'Doorbell Buffer Config is turned off');
    }
    const page = BigInt(controller.pageSize);
    const limit = BigInt(Number.MAX_SAFE_INTEGER);
    if (command.prp1 % page !== 0n || command.prp2 % page !== 0n || command.prp1 > limit || command.prp2 > limit) {
      fail(Status.INVALID_FIELD | Status.DNR, 'doorbell buffers must be page-aligned');
    }
    controller.doorbellBuffer = { doorbells: Number(command.prp1), eventIndexes: Number(command.prp2) };
    controller.submissionQueues.forEach((queue) => {
      if (queue !== undefined) {
        queue.shadow = controller.shadowSlots(queue.id, false);
      }
    });
    controller.completionQueues.forEach((queue) => {
      if (queue !== undefined) {
        queue.shadow = controller.shadowSlots(queue.id, true);
      }
    });
    return DONE;
  }
}

/** Largest data transfer in bytes (MDTS at the minimum page size). */
export function maxTransfer(): number {
  return 2 ** LIMITS.mdts * 4096;
}
