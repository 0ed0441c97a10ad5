/**
 * Serving a TypeScript device to QEMU from inside the test process: a
 * `VfioUserServer` on the jest worker's event loop. QEMU's requests are
 * answered while the test awaits its qtest replies, so nothing in a test
 * may block the event loop (no busy waits, no synchronous child processes
 * while QEMU runs).
 *
 * Kept out of harness/ on purpose: the harness stays independent of lib/,
 * this file is where the QEMU tests meet the package under test.
 */
import { join } from 'node:path';

import { PciDevice, VfioUserServer } from 'vfio-user';

import { DeviceFactory, onCleanup, RunningDevice } from '../harness';

/** A running in-process device: the generic handle plus the device object. */
export interface ServedDevice<D extends PciDevice> extends RunningDevice {
  device: D;
  server: VfioUserServer;
  /** Errors the server reported (handler exceptions, library failures). */
  errors: Error[];
}

/**
 * Serves `make()` on a socket inside the test's temp dir until the test's
 * cleanup (or `stop()`). Everything the server logs or reports goes to
 * `log()`, for failure messages.
 */
export function serveInProcess<D extends PciDevice>(dir: string, make: () => D, name = 'ts'): ServedDevice<D> {
  const socketPath = join(dir, `${name}.sock`);
  const device = make();
  const server = new VfioUserServer(device, { socket: socketPath, logLevel: 4 });
  const errors: Error[] = [];
  const lines: string[] = [];
  server.on('error', (err) => {
    errors.push(err);
    lines.push(`error: ${err.message}`);
  });
  server.on('log', (level, message) => lines.push(`log[${level}]: ${message}`));
  server.on('reset', (kind) => lines.push(`reset: ${kind}`));
  const stop = async (): Promise<void> => {
    removeCleanup();
    await server.close();
  };
  const removeCleanup = onCleanup(stop);
  return { socketPath, stop, log: () => lines.join('\n'), device, server, errors };
}

/** A `DeviceFactory` for a TypeScript device; `onStart` sees each one started. */
export function typescriptDevice<D extends PciDevice>(make: () => D, onStart?: (served: ServedDevice<D>) => void): DeviceFactory {
  return (dir) => {
    const served = serveInProcess(dir, make);
    onStart?.(served);
    return Promise.resolve(served);
  };
}
