/**
 * What a `device.msix()` costs over the system call under it, for
 * `npm run bench`: one process serves the benchmark device, enables its
 * MSI-X vector 0 with the client (the eventfd is never drained, so each
 * trigger is one eventfd write), then times, interleaved, N calls of each:
 *
 * - `device.msix(0)`: the whole path;
 * - the addon's trigger call that `msix()` ends in, called directly;
 * - an addon getter that does nothing but return a field: what any call
 *   from JS into an N-API addon costs.
 *
 * Prints JSON: per kind, the median over the repetitions of the CPU time
 * per call, in ns. Run it pinned; the numbers are CPU time of this process.
 *
 * usage: node addon_floor.js SOCKET_PATH REPS N
 */
import { VfioUserServer } from 'vfio-user';
import { VfioUserClient } from 'vfio-user/client';

import { BenchDevice } from './bench_device';

/** The addon object behind a server (private there: the benchmark reaches in). */
interface AddonContext {
  irqTrigger(vector: number, type: number): boolean;
  readonly connected: boolean;
}

/** VFIO's index of the MSI-X interrupt type. */
const MSIX_INDEX = 2;

function cpuNsPerCall(n: number, body: () => void): number {
  const start = process.cpuUsage();
  body();
  const used = process.cpuUsage(start);
  return ((used.user + used.system) * 1000) / n;
}

function median(values: number[]): number {
  const v = [...values].sort((a, b) => a - b);
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

async function main(): Promise<void> {
  const [socket, repsArg, nArg] = process.argv.slice(2);
  const reps = Number(repsArg);
  const n = Number(nArg);
  if (socket === undefined || !(reps > 0) || !(n > 0)) {
    throw new Error('usage: node addon_floor.js SOCKET_PATH REPS N');
  }
  const device = new BenchDevice();
  const server = new VfioUserServer(device, { socket });
  const client = await VfioUserClient.connect(socket);
  const lines = await client.enableInterrupts('msix', { count: 1 });
  const context = (server as unknown as { context: AddonContext }).context;

  const kinds: Record<string, () => void> = {
    msix: () => {
      for (let i = 0; i < n; i++) {
        device.msix(0);
      }
    },
    addonTrigger: () => {
      for (let i = 0; i < n; i++) {
        context.irqTrigger(0, MSIX_INDEX);
      }
    },
    addonGetter: () => {
      let seen = 0;
      for (let i = 0; i < n; i++) {
        seen += context.connected ? 1 : 0;
      }
      if (seen !== n) {
        throw new Error('addon_floor: the client went away');
      }
    },
  };
  const samples: Record<string, number[]> = {};
  for (let rep = 0; rep < reps; rep++) {
    for (const [kind, body] of Object.entries(kinds)) {
      (samples[kind] ??= []).push(cpuNsPerCall(n, body));
    }
  }
  lines.forEach((line) => line.close());
  await client.close();
  await server.close();
  const result = Object.fromEntries(Object.entries(samples).map(([kind, values]) => [kind, median(values)]));
  process.stdout.write(`${JSON.stringify({ kind: 'addon_floor', reps, n, ns_per_call: result })}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
