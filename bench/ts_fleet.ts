/**
 * Many benchmark devices (bench/bench_device.ts) in one process, for the
 * scale rows of `npm run bench`: COUNT devices listening on
 * DIR/dev-0.sock ... DIR/dev-(COUNT-1).sock, all served by the main
 * thread, or with `workers` each by a worker thread of its own.
 *
 * usage: node ts_fleet.js DIR COUNT [workers]   (serves until SIGTERM or SIGINT)
 */
import * as path from 'node:path';
import { isMainThread, Worker, workerData } from 'node:worker_threads';

import { VfioUserServer } from 'vfio-user';

import { BenchDevice } from './bench_device';

function serve(socket: string): VfioUserServer {
  const server = new VfioUserServer(new BenchDevice(), { socket });
  server.on('error', (err) => {
    process.stderr.write(`ts_fleet: ${socket}: ${err.message}\n`);
  });
  return server;
}

function main(): void {
  const [dir, countArg, mode] = process.argv.slice(2);
  const count = Number(countArg);
  if (dir === undefined || !Number.isInteger(count) || count < 1 || (mode !== undefined && mode !== 'workers')) {
    process.stderr.write('usage: node ts_fleet.js DIR COUNT [workers]\n');
    process.exit(2);
  }
  const sockets = Array.from({ length: count }, (_, i) => path.join(dir, `dev-${i}.sock`));
  let stop: () => Promise<unknown>;
  if (mode === 'workers') {
    const workers = sockets.map((socket) => new Worker(__filename, { workerData: { socket } }));
    stop = () => Promise.all(workers.map((worker) => worker.terminate()));
  } else {
    const servers = sockets.map(serve);
    stop = () => Promise.all(servers.map((server) => server.close()));
  }
  const onSignal = (): void => void stop().then(() => process.exit(0));
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

if (isMainThread) {
  main();
} else {
  serve((workerData as { socket: string }).socket);
}
