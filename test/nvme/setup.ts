/** A controller on a fresh backing file, served, with a client, client memory and the test host driver. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { createNvmeController, DEFAULT_IDENTITY, type NvmeController, type NvmeControllerOptions } from '../../examples/nvme';
import { serveAndConnect } from '../helpers';
import { tempDir } from '../support/temp-dir';
import { NvmeHost } from './nvme-host';

export const RAM = 0x100000;
export const RAM_SIZE = 8 << 20;
export const DISK_SIZE = 4 << 20;

const controllers: NvmeController[] = [];
afterAll(async () => {
  await Promise.all(controllers.map((controller) => controller.namespace.close()));
});

/** A backing file of `size` bytes holding a pattern (byte i is `i * 7 + 1` mod 256). */
export function makeDisk(size = DISK_SIZE): string {
  const path = join(tempDir('nvme-'), 'disk.img');
  const data = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) {
    data[i] = (i * 7 + 1) & 0xff;
  }
  writeFileSync(path, data);
  return path;
}

export interface Rig {
  readonly controller: NvmeController;
  readonly host: NvmeHost;
  readonly disk: string;
  readonly client: NvmeHost['client'];
}

/** Serves a controller and connects; `shared` picks the DMA path. */
export async function rig(shared: boolean, options: { enable?: boolean; disk?: string; controller?: NvmeControllerOptions } = {}): Promise<Rig> {
  const disk = options.disk ?? makeDisk();
  const controller = await createNvmeController(disk, DEFAULT_IDENTITY, options.controller);
  controllers.push(controller);
  const { client } = await serveAndConnect(controller);
  const memory = await client.mapDma({ iova: RAM, size: RAM_SIZE, shared });
  const host = new NvmeHost(client, memory);
  if (options.enable !== false) {
    await host.enable();
  }
  return { controller, host, disk, client };
}
