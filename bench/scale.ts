/**
 * The scale rows of `npm run bench`: many devices in one process, and
 * devices spread over worker threads. The servers are bench/ts_fleet.ts,
 * the client bench/fleet_client.c. The fleet's latency is measured pinned
 * to one CPU, like the latency rows: unpinned, where the scheduler puts the
 * client and the server moves the figures by more than the 10% compared.
 * The worker threads are not pinned, since the point is what two cores do
 * together.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { onCpu, sleep, stopProcess, waitForSocket } from './support';

/** Where the scale benchmark finds its programs and puts its sockets. */
export interface ScaleSetup {
  readonly fleetServer: string;
  readonly fleetClient: string;
  /** A fresh directory for the sockets. */
  readonly dir: string;
  readonly reps: number;
  /** Rounds per repetition (each round reads once from every device). */
  readonly rounds: number;
  /** Requests per client in the throughput runs. */
  readonly requests: number;
  readonly log: (message: string) => void;
  /** The CPU the latency comparison runs on; undefined when taskset is missing. */
  readonly cpu?: string;
}

/** One row of the table, as bench/run.ts prints it. */
export interface ScaleRow {
  group: string;
  name: string;
  id?: string;
  value?: number;
  unit: string;
  baseline?: string;
  ratio?: number;
}

interface FleetResult {
  name: string;
  devices: number;
  rss_kb: number;
  rep_median_ns: number[];
  rep_per_s: number[];
  median_ns: number;
  per_s: number;
}

const GROUP = 'scale (TypeScript devices)';
export const FLEET_SIZE = 100;

function median(values: number[]): number {
  const v = [...values].sort((a, b) => a - b);
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

interface Fleet {
  readonly dir: string;
  readonly proc: ChildProcess;
}

async function startFleet(setup: ScaleSetup, name: string, count: number, workers: boolean, cpu?: string): Promise<Fleet> {
  const dir = path.join(setup.dir, name);
  fs.mkdirSync(dir);
  const [cmd, args] = onCpu(cpu, [process.execPath, setup.fleetServer, dir, String(count), ...(workers ? ['workers'] : [])]);
  const proc = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  for (let i = 0; i < count; i++) {
    await waitForSocket(path.join(dir, `dev-${i}.sock`), proc, `bench: ts_fleet ${name} did not start listening`);
  }
  return { dir, proc };
}

function stopFleet(fleet: Fleet): Promise<void> {
  return stopProcess(fleet.proc);
}

function parseFleet(stdout: string): FleetResult[] {
  return (JSON.parse(stdout) as { results: FleetResult[] }).results;
}

/** Runs fleet_client to completion. */
function fleetClient(setup: ScaleSetup, args: string[], cpu?: string): FleetResult[] {
  const [cmd, argv] = onCpu(cpu, [setup.fleetClient, ...args]);
  const result = spawnSync(cmd, argv, { encoding: 'utf8', timeout: 300000 });
  if (result.error !== undefined || result.status !== 0) {
    process.stderr.write(result.stderr ?? '');
    throw new Error(`bench: fleet_client failed (${result.error?.message ?? `exit ${String(result.status)}`})`);
  }
  return parseFleet(result.stdout);
}

/** Runs fleet_client on each target at once; resolves with every result. */
function concurrentClients(setup: ScaleSetup, targets: string[]): Promise<FleetResult[]> {
  return Promise.all(
    targets.map(
      (target) =>
        new Promise<FleetResult>((resolve, reject) => {
          const child = spawn(setup.fleetClient, ['--reps', '3', '--warmup', '2000', '--n', String(setup.requests), target], {
            stdio: ['ignore', 'pipe', 'inherit'],
          });
          let out = '';
          child.stdout.on('data', (chunk: Buffer) => {
            out += chunk.toString();
          });
          child.once('exit', (code) =>
            code === 0 ? resolve(parseFleet(out)[0]) : reject(new Error(`bench: fleet_client exited with ${String(code)}`)),
          );
        }),
    ),
  );
}

/**
 * A fleet of devices against one device (latency per access and memory per
 * device), then one device in a worker thread against two in two workers,
 * each with its own client (throughput).
 */
export async function scaleRows(setup: ScaleSetup): Promise<ScaleRow[]> {
  const rows: ScaleRow[] = [];

  setup.log(`scale: 1 device against ${FLEET_SIZE} in one process, ${setup.reps} repetitions of ${setup.rounds} rounds`);
  const one = await startFleet(setup, 'one', 1, false, setup.cpu);
  const many = await startFleet(setup, 'many', FLEET_SIZE, false, setup.cpu);
  try {
    const [single, fleet] = fleetClient(setup, [
      '--reps', String(setup.reps), '--n', String(setup.rounds), '--warmup', '50',
      `one=${one.dir}:1:${one.proc.pid ?? 0}`, `many=${many.dir}:${FLEET_SIZE}:${many.proc.pid ?? 0}`,
    ], setup.cpu);
    const pinned = setup.cpu === undefined ? 'unpinned' : 'pinned';
    rows.push({ group: GROUP, name: `one device: 4-byte BAR read, p50 (${pinned})`, id: 'one device', value: single.median_ns / 1000, unit: 'µs' });
    rows.push({
      group: GROUP, name: `${FLEET_SIZE} devices in one process, read round-robin: p50, ${pinned} (target x baseline <= 1.10)`,
      value: fleet.median_ns / 1000, unit: 'µs', baseline: 'one device',
      ratio: median(fleet.rep_median_ns.map((v, i) => v / single.rep_median_ns[i])),
    });
    rows.push({
      group: GROUP, name: `memory per extra device, ${FLEET_SIZE} attached (target < 1 MiB)`,
      value: (fleet.rss_kb - single.rss_kb) / (FLEET_SIZE - 1), unit: 'KiB',
    });
  } finally {
    await stopFleet(one);
    await stopFleet(many);
  }

  setup.log(`scale: 1 device in a worker thread against 2 in two, ${setup.requests} requests per client`);
  const alone = await startFleet(setup, 'worker-one', 1, true);
  let single: FleetResult;
  try {
    single = (await concurrentClients(setup, [`one=${alone.dir}:1`]))[0];
  } finally {
    await stopFleet(alone);
  }
  const pair = await startFleet(setup, 'worker-two', 2, true);
  try {
    // Each client sees its device as dev-0 of a directory of its own.
    const targets = [0, 1].map((i) => {
      const dir = path.join(setup.dir, `worker-two-${i}`);
      fs.mkdirSync(dir);
      fs.symlinkSync(path.join(pair.dir, `dev-${i}.sock`), path.join(dir, 'dev-0.sock'));
      return `dev${i}=${dir}:1`;
    });
    await sleep(100);
    const both = await concurrentClients(setup, targets);
    const total = both.reduce((sum, r) => sum + r.per_s, 0);
    rows.push({ group: GROUP, name: 'one device in a worker thread, one client: requests/s (unpinned)', id: 'one worker', value: single.per_s / 1000, unit: 'k/s' });
    rows.push({
      group: GROUP, name: 'two devices in two worker threads, a client each: requests/s together (target x baseline <= 0.59, 1.7x the rate)',
      value: total / 1000, unit: 'k/s', baseline: 'one worker', ratio: single.per_s / total,
    });
  } finally {
    await stopFleet(pair);
  }
  return rows;
}
