/**
 * An NVMe controller written on vfio-user: see docs/nvme.md.
 *
 * Serve it with
 * `NVME_BACKING_FILE=disk.img npx vfio-user serve examples/nvme/index.ts --socket /tmp/nvme.sock`;
 * the namespace is the file, in 512-byte blocks.
 */
import { NvmeController, type NvmeControllerOptions } from './controller';
import type { ControllerIdentity } from './identify';
import { BackingFile } from './namespace';

export { NvmeController, type ControllerStatistics, type NvmeControllerOptions } from './controller';
export { BackingFile, BLOCK_SIZE } from './namespace';
export type { ControllerIdentity } from './identify';
export * from './constants';

/** The identity the controller reports unless told another. */
export const DEFAULT_IDENTITY: ControllerIdentity = {
  vendorId: 0x1234,
  serial: 'VFU0001',
  model: 'vfio-user TypeScript NVMe',
  firmware: '1.0',
};

/** Opens the backing file and makes a controller on it. */
export async function createNvmeController(
  path: string,
  identity: ControllerIdentity = DEFAULT_IDENTITY,
  options: NvmeControllerOptions = {},
): Promise<NvmeController> {
  return new NvmeController(await BackingFile.open(path), identity, options);
}

/** The CLI's factory: the backing file comes from NVME_BACKING_FILE. */
export default async function createFromEnvironment(): Promise<NvmeController> {
  const path = process.env.NVME_BACKING_FILE;
  if (path === undefined || path === '') {
    throw new Error('set NVME_BACKING_FILE to the file that backs the namespace');
  }
  return createNvmeController(path);
}
