/**
 * Shared by the client-driven jest tests: short socket paths in a private
 * temp directory, and servers and clients that are always cleaned up.
 */
import { join } from 'node:path';

import { PciDevice, VfioUserServer, type VfioUserServerOptions } from '../lib';
import { VfioUserClient } from '../lib/client';
import { tempDir } from './support/temp-dir';

const servers: VfioUserServer[] = [];
const clients: VfioUserClient[] = [];

/** A fresh socket path in a temp directory removed after the test file. */
export function socketPath(name = 'dev'): string {
  return join(tempDir(), `${name}.sock`);
}

/** Serves a device on a fresh socket; closed after each test. */
export function serve(device: PciDevice, options: Partial<VfioUserServerOptions> = {}): VfioUserServer {
  const server = new VfioUserServer(device, { socket: socketPath(), ...options });
  servers.push(server);
  return server;
}

/** Connects a client; closed after each test. */
export async function connect(server: VfioUserServer | string): Promise<VfioUserClient> {
  const client = await VfioUserClient.connect(typeof server === 'string' ? server : server.socket);
  clients.push(client);
  return client;
}

/** Serves a device and connects a client to it. */
export async function serveAndConnect(device: PciDevice): Promise<{ server: VfioUserServer; client: VfioUserClient }> {
  const server = serve(device);
  return { server, client: await connect(server) };
}

/** Resolves on the next `event` of an emitter. */
export function nextEvent<T extends unknown[]>(
  emitter: { once(event: string, listener: (...args: T) => void): unknown },
  event: string,
): Promise<T> {
  return new Promise((resolve) => emitter.once(event, (...args: T) => resolve(args)));
}

/** Waits until `predicate` holds, polling. */
export async function until(predicate: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) {
      throw new Error('condition not met in time');
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Rejection of `promise`, which must reject. */
export async function rejection(promise: Promise<unknown>): Promise<Error & { code?: string; errno?: number }> {
  try {
    await promise;
  } catch (err) {
    return err as Error & { code?: string; errno?: number };
  }
  throw new Error('expected a rejection');
}

/** A 32-bit little-endian value as bytes. */
export function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value >>> 0);
  return b;
}

afterEach(async () => {
  for (const client of clients.splice(0)) {
    await client.close();
  }
  for (const server of servers.splice(0)) {
    await server.close();
  }
});

/** A REGION_READ / REGION_WRITE payload with any fields, consistent or not. */
export function regionAccess(region: number, offset: bigint, count: number, data: Uint8Array = new Uint8Array(0)): Buffer {
  const header = Buffer.alloc(16);
  header.writeBigUInt64LE(offset, 0);
  header.writeUInt32LE(region, 8);
  header.writeUInt32LE(count, 12);
  return Buffer.concat([header, data]);
}
