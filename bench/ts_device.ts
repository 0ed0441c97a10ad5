/**
 * The TypeScript device of the benchmarks (bench/bench_device.ts), served
 * through the addon.
 *
 * usage: node ts_device.js SOCKET_PATH   (serves until SIGTERM or SIGINT)
 */
import { VfioUserServer } from 'vfio-user';

import { BenchDevice } from './bench_device';

function main(): void {
  const socket = process.argv[2];
  if (socket === undefined) {
    process.stderr.write('usage: node ts_device.js SOCKET_PATH\n');
    process.exit(2);
  }
  const device = new BenchDevice();
  const t0 = process.hrtime.bigint();
  const server = new VfioUserServer(device, { socket });
  server.once('connect', () => {
    device.startupNs = Number(process.hrtime.bigint() - t0);
  });
  server.on('error', (err) => {
    process.stderr.write(`ts_device: ${err.message}\n`);
  });
  const stop = (): void => void server.close();
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
