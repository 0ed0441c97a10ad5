/**
 * A DeviceContext for the tests: a temporary socket, the 65 ioViews, and
 * handlers that record every call and delegate region accesses to a
 * replaceable function.
 */
import * as path from 'node:path';

import { DeviceContext, type DeviceHandlers } from '../../lib/native';
import { tempDir } from '../support/temp-dir';

export const REGION = {
  READ: 1,
  WRITE: 2,
  RW: 3,
  MEM: 4,
} as const;

export const IRQ = { INTX: 0, MSI: 1, MSIX: 2 } as const;
export const PCI_TYPE_EXPRESS = 3;

export function makeIoViews(): Buffer[] {
  const memory = new ArrayBuffer(64);
  return Array.from({ length: 65 }, (_, n) => Buffer.from(memory, 0, n));
}

export function tempSocket(name = 'dev.sock'): string {
  return path.join(tempDir('vfu-native-'), name);
}

export type Call = [string, ...unknown[]];

export type Access = (region: number, offset: number, data: Buffer, isWrite: boolean) => void;

export class Recorder implements DeviceHandlers {
  calls: Call[] = [];
  errors: Error[] = [];
  /** Extra behaviour of the attach and detach handlers. */
  onConnect?: () => void;
  onDisconnect?: () => void;
  /** Region access behaviour; by default reads return 0xab bytes. */
  access: Access = (_region, _offset, data, isWrite) => {
    if (!isWrite) {
      data.fill(0xab);
    }
  };

  regionAccess(region: number, offset: number, data: Buffer, isWrite: boolean): void {
    this.calls.push(['regionAccess', region, offset, data.length, isWrite]);
    this.access(region, offset, data, isWrite);
  }
  reset(type: number): void {
    this.calls.push(['reset', type]);
  }
  irqState(type: number, start: number, count: number, masked: boolean): void {
    this.calls.push(['irqState', type, start, count, masked]);
  }
  dmaRegister(iova: number, length: number, prot: number, memory: ArrayBuffer | undefined): void {
    this.calls.push(['dmaRegister', iova, length, prot, memory]);
  }
  dmaUnregister(iova: number, length: number): void {
    this.calls.push(['dmaUnregister', iova, length]);
  }
  connect(): void {
    this.calls.push(['connect']);
    this.onConnect?.();
  }
  disconnect(): void {
    this.calls.push(['disconnect']);
    this.onDisconnect?.();
  }
  log(level: number, message: string): void {
    this.calls.push(['log', level, message]);
  }
  error(err: Error): void {
    this.errors.push(err);
  }

  named(name: string): Call[] {
    return this.calls.filter((call) => call[0] === name);
  }
}

export interface Device {
  ctx: DeviceContext;
  handlers: Recorder;
  ioViews: Buffer[];
  socket: string;
}

/** A PCIe device with a 4 KiB memory BAR0, realized and serving. */
export function startDevice(options: { socket?: string; setup?: (ctx: DeviceContext) => void } = {}): Device {
  const socket = options.socket ?? tempSocket();
  const handlers = new Recorder();
  const ioViews = makeIoViews();
  const ctx = new DeviceContext(socket, handlers, ioViews);
  ctx.pciInit(PCI_TYPE_EXPRESS);
  ctx.setIds(0x1b36, 0x0100, 0x1af4, 0x1100);
  ctx.setupRegion(0, 0x1000, REGION.RW | REGION.MEM);
  options.setup?.(ctx);
  ctx.realize();
  ctx.start();
  return { ctx, handlers, ioViews, socket };
}
