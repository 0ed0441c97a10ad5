/**
 * A small virtio driver for the tests: it finds the virtio capabilities
 * the way Linux's virtio_pci_modern does, negotiates, lays out split rings
 * in client guest memory (shared memfd or message-path memory) and posts
 * chains, so that a device is driven over VfioUserClient with no VM.
 */
import { CapabilityId, PciConfig, Region } from 'vfio-user';
import type { GuestMemory, VfioUserClient } from 'vfio-user/client';
import { VirtioCommonCfg as Cfg, VirtioFeature, VirtioPciCap, VirtioStatus, VirtqDescFlag } from 'vfio-user/virtio';

/** A virtio structure a capability points at. */
export interface VirtioStructure {
  readonly bar: number;
  readonly offset: number;
  readonly length: number;
  readonly capOffset: number;
}

/** Where a device's virtio structures are, read from its capability list. */
export interface VirtioLayout {
  readonly common: VirtioStructure;
  readonly notify: VirtioStructure & { readonly multiplier: number };
  readonly isr: VirtioStructure;
  readonly device?: VirtioStructure;
}

export async function readLayout(client: VfioUserClient): Promise<VirtioLayout> {
  const found = new Map<number, VirtioStructure & { multiplier: number }>();
  let at = (await client.read8(Region.CONFIG, PciConfig.CAPABILITY_LIST)) & ~3;
  while (at !== 0) {
    const cap = await client.readConfig(at, 20);
    if (cap[0] === CapabilityId.VENDOR && !found.has(cap[3])) {
      found.set(cap[3], {
        bar: cap[4], offset: cap.readUInt32LE(8), length: cap.readUInt32LE(12), capOffset: at,
        multiplier: cap[3] === VirtioPciCap.NOTIFY_CFG ? cap.readUInt32LE(16) : 0,
      });
    }
    at = cap[1] & ~3;
  }
  const need = (type: number): VirtioStructure & { multiplier: number } => {
    const s = found.get(type);
    if (s === undefined) {
      throw new Error(`no virtio capability of type ${type}`);
    }
    return s;
  };
  return { common: need(VirtioPciCap.COMMON_CFG), notify: need(VirtioPciCap.NOTIFY_CFG), isr: need(VirtioPciCap.ISR_CFG), device: found.get(VirtioPciCap.DEVICE_CFG) };
}

/** A chain as the test posts it: buffers the device reads, then lengths of buffers it writes. */
export interface Chain {
  readonly out?: readonly Buffer[];
  readonly inLengths?: readonly number[];
  /** Put the chain in an indirect table instead of the ring's descriptors. */
  readonly indirect?: boolean;
}

/** One queue as the driver lays it out. */
export class TestQueue {
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
  private nextDesc = 0;
  private availIdx = 0;
  lastUsed = 0;
  /** Guest addresses of the writable buffers of each posted head. */
  readonly writableOf = new Map<number, Array<{ address: number; length: number }>>();

  constructor(private readonly driver: TestVirtioDriver, readonly index: number, readonly size: number) {
    this.desc = driver.alloc(16 * size, 16);
    this.avail = driver.alloc(6 + 2 * size, 2);
    this.used = driver.alloc(6 + 8 * size, 4);
  }

  /** Writes descriptor `i` of a table at `table`. */
  writeDesc(i: number, address: number, length: number, flags: number, next: number, table = this.desc): void {
    const d = Buffer.alloc(16);
    d.writeBigUInt64LE(BigInt(address), 0);
    d.writeUInt32LE(length, 8);
    d.writeUInt16LE(flags, 12);
    d.writeUInt16LE(next, 14);
    this.driver.memory.write(table + 16 * i, d);
  }

  /** Puts a head in the available ring and publishes it (without a kick). */
  publish(head: number): void {
    const entry = Buffer.alloc(2);
    entry.writeUInt16LE(head);
    this.driver.memory.write(this.avail + 4 + 2 * (this.availIdx % this.size), entry);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    const idx = Buffer.alloc(2);
    idx.writeUInt16LE(this.availIdx);
    this.driver.memory.write(this.avail + 2, idx);
  }

  /** Lays out a chain in fresh buffers and publishes it; returns its head. */
  post(chain: Chain): number {
    const parts: Array<{ address: number; length: number; write: boolean }> = [];
    for (const data of chain.out ?? []) {
      const address = this.driver.alloc(data.length, 8);
      this.driver.memory.write(address, data);
      parts.push({ address, length: data.length, write: false });
    }
    for (const length of chain.inLengths ?? []) {
      parts.push({ address: this.driver.alloc(length, 8), length, write: true });
    }
    const head = this.nextDesc % this.size;
    if (chain.indirect === true) {
      const table = this.driver.alloc(16 * parts.length, 16);
      parts.forEach((p, i) => this.writeDesc(i, p.address, p.length, (p.write ? VirtqDescFlag.WRITE : 0) | (i + 1 < parts.length ? VirtqDescFlag.NEXT : 0), i + 1, table));
      this.writeDesc(head, table, 16 * parts.length, VirtqDescFlag.INDIRECT, 0);
      this.nextDesc++;
    } else {
      parts.forEach((p, i) => {
        const at = (this.nextDesc + i) % this.size;
        this.writeDesc(at, p.address, p.length, (p.write ? VirtqDescFlag.WRITE : 0) | (i + 1 < parts.length ? VirtqDescFlag.NEXT : 0), (at + 1) % this.size);
      });
      this.nextDesc += parts.length;
    }
    this.writableOf.set(head, parts.filter((p) => p.write));
    this.publish(head);
    return head;
  }

  /** Notifies the device. */
  async kick(): Promise<void> {
    const { notify } = this.driver.layout;
    await this.driver.client.write16(notify.bar, notify.offset + this.index * notify.multiplier, this.index);
  }

  /** used.idx as the device wrote it. */
  usedIdx(): number {
    return this.driver.memory.read(this.used + 2, 2).readUInt16LE();
  }

  /** Used elements added since the last call. */
  takeUsed(): Array<{ id: number; len: number }> {
    const out: Array<{ id: number; len: number }> = [];
    const idx = this.usedIdx();
    while (this.lastUsed !== idx) {
      const e = this.driver.memory.read(this.used + 4 + 8 * (this.lastUsed % this.size), 8);
      out.push({ id: e.readUInt32LE(0), len: e.readUInt32LE(4) });
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
    }
    return out;
  }

  /** Waits until `count` used elements arrived, returns them. */
  async waitUsed(count: number, timeoutMs = 3000): Promise<Array<{ id: number; len: number }>> {
    const got: Array<{ id: number; len: number }> = [];
    const deadline = Date.now() + timeoutMs;
    while (got.length < count) {
      got.push(...this.takeUsed());
      if (got.length >= count) {
        break;
      }
      if (Date.now() > deadline) {
        throw new Error(`queue ${this.index}: ${got.length} of ${count} used elements in time`);
      }
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    return got;
  }

  /** Writes used_event (EVENT_IDX). */
  setUsedEvent(value: number): void {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(value);
    this.driver.memory.write(this.avail + 4 + 2 * this.size, b);
  }

  /** avail_event as the device wrote it (EVENT_IDX). */
  availEvent(): number {
    return this.driver.memory.read(this.used + 4 + 8 * this.size, 2).readUInt16LE();
  }

  /** Sets avail.flags (NO_INTERRUPT). */
  setAvailFlags(flags: number): void {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(flags);
    this.driver.memory.write(this.avail, b);
  }
}

/** The driver. */
export class TestVirtioDriver {
  private next: number;
  readonly queues: TestQueue[] = [];

  constructor(public client: VfioUserClient, readonly layout: VirtioLayout, public memory: GuestMemory) {
    this.next = memory.iova;
  }

  /** Goes on with the device migrated behind `client`, in `memory` (a copy of the old guest memory). */
  moveTo(client: VfioUserClient, memory: GuestMemory): void {
    this.client = client;
    this.memory = memory;
  }

  static async attach(client: VfioUserClient, memory: GuestMemory): Promise<TestVirtioDriver> {
    return new TestVirtioDriver(client, await readLayout(client), memory);
  }

  /** Bump allocation in guest memory. */
  alloc(length: number, align: number): number {
    const at = Math.ceil(this.next / align) * align;
    if (at + length > this.memory.iova + this.memory.size) {
      throw new Error('test guest memory is full');
    }
    this.next = at + length;
    return at;
  }

  async readCommon(field: number, width: 1 | 2 | 4): Promise<number> {
    const { bar, offset } = this.layout.common;
    return width === 1 ? this.client.read8(bar, offset + field) : width === 2 ? this.client.read16(bar, offset + field) : this.client.read32(bar, offset + field);
  }

  async writeCommon(field: number, width: 1 | 2 | 4, value: number): Promise<void> {
    const { bar, offset } = this.layout.common;
    await (width === 1 ? this.client.write8(bar, offset + field, value) : width === 2 ? this.client.write16(bar, offset + field, value) : this.client.write32(bar, offset + field, value));
  }

  status(): Promise<number> {
    return this.readCommon(Cfg.DEVICE_STATUS, 1);
  }

  async deviceFeatures(): Promise<bigint> {
    await this.writeCommon(Cfg.DEVICE_FEATURE_SELECT, 4, 0);
    const low = await this.readCommon(Cfg.DEVICE_FEATURE, 4);
    await this.writeCommon(Cfg.DEVICE_FEATURE_SELECT, 4, 1);
    const high = await this.readCommon(Cfg.DEVICE_FEATURE, 4);
    return (BigInt(high) << 32n) | BigInt(low);
  }

  /** ACKNOWLEDGE, DRIVER, features, FEATURES_OK; returns the status read back. */
  async negotiate(features: bigint): Promise<number> {
    await this.writeCommon(Cfg.DEVICE_STATUS, 1, 0);
    await this.writeCommon(Cfg.DEVICE_STATUS, 1, VirtioStatus.ACKNOWLEDGE);
    await this.writeCommon(Cfg.DEVICE_STATUS, 1, VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER);
    await this.writeCommon(Cfg.DRIVER_FEATURE_SELECT, 4, 0);
    await this.writeCommon(Cfg.DRIVER_FEATURE, 4, Number(features & 0xffffffffn));
    await this.writeCommon(Cfg.DRIVER_FEATURE_SELECT, 4, 1);
    await this.writeCommon(Cfg.DRIVER_FEATURE, 4, Number(features >> 32n));
    await this.writeCommon(Cfg.DEVICE_STATUS, 1, VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK);
    return this.status();
  }

  /** Programs and enables queue `index` with `size` entries (rings freshly allocated). */
  async setupQueue(index: number, size: number, msixVector?: number): Promise<TestQueue> {
    await this.writeCommon(Cfg.QUEUE_SELECT, 2, index);
    await this.writeCommon(Cfg.QUEUE_SIZE, 2, size);
    const queue = new TestQueue(this, index, size);
    await this.writeAddress(Cfg.QUEUE_DESC, queue.desc);
    await this.writeAddress(Cfg.QUEUE_DRIVER, queue.avail);
    await this.writeAddress(Cfg.QUEUE_DEVICE, queue.used);
    if (msixVector !== undefined) {
      await this.writeCommon(Cfg.QUEUE_MSIX_VECTOR, 2, msixVector);
    }
    await this.writeCommon(Cfg.QUEUE_ENABLE, 2, 1);
    this.queues[index] = queue;
    return queue;
  }

  /** Two 32-bit writes, as Linux programs 64-bit queue addresses. */
  async writeAddress(field: number, address: number): Promise<void> {
    await this.writeCommon(field, 4, address % 2 ** 32);
    await this.writeCommon(field + 4, 4, Math.floor(address / 2 ** 32));
  }

  async driverOk(): Promise<void> {
    const status = await this.status();
    await this.writeCommon(Cfg.DEVICE_STATUS, 1, status | VirtioStatus.DRIVER_OK);
  }

  /** The whole bring-up: VERSION_1 plus `extra` features, `queues` queues of `size`, DRIVER_OK. */
  async bringUp(options: { features?: bigint; queues?: number; size?: number; msix?: boolean } = {}): Promise<TestQueue[]> {
    const features = (1n << BigInt(VirtioFeature.VERSION_1)) | (options.features ?? 0n);
    const status = await this.negotiate(features);
    if ((status & VirtioStatus.FEATURES_OK) === 0) {
      throw new Error('FEATURES_OK did not stick');
    }
    if (options.msix === true) {
      await this.writeCommon(Cfg.CONFIG_MSIX_VECTOR, 2, 0);
    }
    const queues: TestQueue[] = [];
    for (let i = 0; i < (options.queues ?? 1); i++) {
      queues.push(await this.setupQueue(i, options.size ?? 16, options.msix === true ? i + 1 : undefined));
    }
    await this.driverOk();
    return queues;
  }

  /** Reads (and so clears) the ISR status byte. */
  readIsr(): Promise<number> {
    return this.client.read8(this.layout.isr.bar, this.layout.isr.offset);
  }

  async readDeviceConfig(offset: number, length: number): Promise<Buffer> {
    const device = this.layout.device;
    if (device === undefined) {
      throw new Error('the device has no device configuration');
    }
    return this.client.readBar(device.bar, device.offset + offset, length);
  }
}
