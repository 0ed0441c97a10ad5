/**
 * The block section of `npm run bench` (alone: `npm run bench:block`):
 * our virtio-blk and NVMe examples against QEMU's built-in virtio-blk-pci
 * and nvme, all in one TCG guest, on the same raw file, driven by the same
 * static program (block-workload.c) with O_DIRECT.
 *
 * Every repetition runs every workload on every disk (the order reversed
 * on odd repetitions); a ratio is taken within each repetition and the
 * table shows medians. Around each run it samples the CPU time of this
 * process (which serves our devices) and of QEMU, and our NVMe's counts of
 * doorbell MMIO writes and of commands, and divides them by the requests
 * the guest made.
 *
 * Sizes: BENCH_BLOCK_REPS (default 5), BENCH_BLOCK_MS per run (default
 * 1000), BENCH_BLOCK_DISK_MIB (default 64). BENCH_BLOCK=0 skips the
 * section. BENCH_BLOCK_DEVICES and BENCH_BLOCK_WORKLOADS (comma-separated
 * keys, see TARGET_KEYS and WORKLOADS) pick rows. BENCH_BLOCK_DMA_MESSAGES=1
 * adds a guest whose memory is not shared (our NVMe by DMA messages; off by
 * default because that path is slow, see docs/benchmarks.md).
 */
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { compileStaticProgram } from 'vfio-user/guest';

import { createNvmeController, DEFAULT_IDENTITY, type NvmeController } from '../../examples/nvme';
import { VirtioBlk } from '../../examples/virtio-blk';
import { envInt, findRoot } from '../support';
import { BlockGuest, processCpuSeconds, type BlockDisk, type Workload, type WorkloadResult } from './block-guest';
import { renderBlockMarkdown, renderBlockTable, type BlockRow } from './block-table';

const ROOT = findRoot(__dirname);
const RESULTS = path.join(ROOT, 'bench', 'results');
const REPS = envInt('BENCH_BLOCK_REPS', 5);
const MS = envInt('BENCH_BLOCK_MS', 1000);
const DISK_MIB = envInt('BENCH_BLOCK_DISK_MIB', 64);

/** The keys named in the comma-separated environment variable `name`, or undefined for all. */
function picked(name: string, known: readonly string[]): Set<string> | undefined {
  const value = process.env[name];
  if (value === undefined || value === '') {
    return undefined;
  }
  const keys = new Set(value.split(','));
  const unknown = [...keys].filter((k) => !known.includes(k));
  if (unknown.length > 0) {
    throw new Error(`${name}: unknown ${unknown.join(', ')} (known: ${known.join(', ')})`);
  }
  return keys;
}

/** A disk under test, with what the table calls it. */
interface Target extends BlockDisk {
  readonly key: string;
  readonly label: string;
  /** The key of the QEMU device it is compared with (ours only). */
  readonly versus?: string;
  /** Our NVMe controller, for its doorbell count. */
  readonly nvme?: NvmeController;
}

interface NamedWorkload extends Workload {
  readonly key: string;
  readonly label: string;
  /** MB/s (sequential) or requests/s. */
  readonly unit: 'MB/s' | 'IOPS';
}

const ALL_WORKLOADS: readonly NamedWorkload[] = [
  { key: 'seqread', label: 'sequential 1 MiB reads', unit: 'MB/s', mode: 'seqread', blockBytes: 1 << 20, milliseconds: MS, threads: 1 },
  { key: 'seqwrite', label: 'sequential 1 MiB writes', unit: 'MB/s', mode: 'seqwrite', blockBytes: 1 << 20, milliseconds: MS, threads: 1 },
  { key: 'rand1', label: '4 KiB random reads, 1 in flight', unit: 'IOPS', mode: 'randread', blockBytes: 4096, milliseconds: MS, threads: 1 },
  { key: 'rand4', label: '4 KiB random reads, 4 in flight', unit: 'IOPS', mode: 'randread', blockBytes: 4096, milliseconds: MS, threads: 4 },
];
const WORKLOAD_KEYS = picked('BENCH_BLOCK_WORKLOADS', ALL_WORKLOADS.map((w) => w.key));
const WORKLOADS = ALL_WORKLOADS.filter((w) => WORKLOAD_KEYS?.has(w.key) ?? true);
const TARGET_KEYS = ['blk', 'qemu-blk', 'nvme', 'nvme-plain', 'qemu-nvme'];
const DEVICE_KEYS = picked('BENCH_BLOCK_DEVICES', TARGET_KEYS);

/** One run's numbers. */
interface Sample extends WorkloadResult {
  /** CPU seconds of this process (our device's server) during the run. */
  serverCpu: number;
  /** CPU seconds of QEMU (the guest, its devices) during the run. */
  qemuCpu: number;
  /** Doorbell MMIO writes our NVMe received during the run. */
  doorbells?: number;
  /** Commands our NVMe fetched during the run (Linux may split a request). */
  commands?: number;
}

function log(message: string): void {
  process.stderr.write(`bench block: ${message}\n`);
}

function median(values: readonly number[]): number {
  const v = [...values].sort((a, b) => a - b);
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

function rate(workload: NamedWorkload, sample: Sample): number {
  return workload.unit === 'MB/s' ? sample.bytes / sample.seconds / 1e6 : sample.ops / sample.seconds;
}

/**
 * Runs every workload on every target, `reps` times, interleaved. Returns
 * samples[workload][target][rep].
 */
async function measure(guest: BlockGuest, targets: readonly Target[], workloads: readonly NamedWorkload[], reps: number,
  what = 'repetition'): Promise<Map<string, Map<string, Sample[]>>> {
  const samples = new Map(workloads.map((w) => [w.key, new Map(targets.map((t) => [t.key, [] as Sample[]]))]));
  for (let rep = 0; rep < reps; rep++) {
    log(`${what} ${rep + 1} of ${reps}`);
    for (const workload of workloads) {
      const order = rep % 2 === 0 ? targets : [...targets].reverse();
      for (const target of order) {
        const server = process.cpuUsage();
        const qemu = processCpuSeconds(guest.qemuPid);
        const before = target.nvme === undefined ? undefined : { ...target.nvme.statistics };
        const result = await guest.run(target.slot, workload);
        const used = process.cpuUsage(server);
        samples.get(workload.key)!.get(target.key)!.push({
          ...result,
          serverCpu: (used.user + used.system) / 1e6,
          qemuCpu: processCpuSeconds(guest.qemuPid) - qemu,
          doorbells: before === undefined ? undefined : target.nvme!.statistics.doorbellWrites - before.doorbellWrites,
          commands: before === undefined ? undefined : target.nvme!.statistics.commands - before.commands,
        });
      }
    }
  }
  return samples;
}

/** The table rows of one guest's measurements. */
function rowsOf(group: string, targets: readonly Target[], workloads: readonly NamedWorkload[],
  samples: Map<string, Map<string, Sample[]>>): BlockRow[] {
  const rows: BlockRow[] = [];
  for (const workload of workloads) {
    const byTarget = samples.get(workload.key)!;
    for (const target of targets) {
      const runs = byTarget.get(target.key)!;
      const base = target.versus === undefined ? undefined : byTarget.get(target.versus);
      const perOp = (pick: (s: Sample) => number | undefined): number | undefined =>
        runs.some((s) => pick(s) === undefined) ? undefined : median(runs.map((s) => pick(s)! / s.ops));
      rows.push({
        group: `${group}: ${workload.label}`,
        name: target.label,
        value: median(runs.map((s) => rate(workload, s))),
        unit: workload.unit,
        ratio: base === undefined ? undefined : median(runs.map((s, i) => rate(workload, s) / rate(workload, base[i]))),
        versus: target.versus === undefined ? undefined : targets.find((t) => t.key === target.versus)?.label,
        serverCpuUs: target.builtIn === undefined ? perOp((s) => s.serverCpu * 1e6) : undefined,
        qemuCpuUs: perOp((s) => s.qemuCpu * 1e6),
        doorbellsPerRequest: perOp((s) => s.doorbells),
        commandsPerRequest: perOp((s) => s.commands),
      });
    }
  }
  return rows;
}

/** Boots one guest with `targets`, measures, tears it all down. */
async function runGuest(group: string, image: string, program: Buffer, targets: readonly Target[], sharedMemory: boolean,
  workloads: readonly NamedWorkload[], reps: number): Promise<{ rows: BlockRow[]; raw: unknown }> {
  log(`${group}: booting the guest (${targets.map((t) => t.label).join('; ')})`);
  const guest = await BlockGuest.start(image, targets, program, sharedMemory);
  try {
    // One short untimed pass: the guest's page cache of the program, the host's of the file, the devices' queues.
    await measure(guest, targets, workloads.map((w) => ({ ...w, milliseconds: Math.min(200, w.milliseconds) })), 1, 'warm-up');
    const samples = await measure(guest, targets, workloads, reps);
    const raw = Object.fromEntries([...samples].map(([w, byTarget]) => [w, Object.fromEntries(byTarget)]));
    return { rows: rowsOf(group, targets, workloads, samples), raw };
  } finally {
    if (guest.deviceLog.length > 0) {
      log(`${group}: our servers logged ${guest.deviceLog.length} messages, the last ones:\n${guest.deviceLog.slice(-5).join('\n')}`);
    }
    await guest.stop();
  }
}

async function main(): Promise<void> {
  if (process.env.BENCH_BLOCK === '0') {
    log('skipped (BENCH_BLOCK=0)');
    return;
  }
  const started = Date.now();
  const load = os.loadavg()[0];
  const cpus = os.cpus();
  const machine = `${cpus.length} × ${cpus[0]?.model ?? 'unknown CPU'}, Linux ${os.release()}, Node ${process.version}`;
  log(`machine: ${machine}; load average ${load.toFixed(2)}`);
  const program = await compileStaticProgram(readFileSync(path.join(ROOT, 'bench', 'block', 'block-workload.c'), 'utf8'), ['-pthread']);

  const dir = mkdtempSync(path.join(os.tmpdir(), 'vfu-block-bench-'));
  const rows: BlockRow[] = [];
  const raw: Record<string, unknown> = {};
  const closers: Array<() => Promise<void> | void> = [];
  try {
    const image = path.join(dir, 'disk.img');
    // Written through, so that no run reads a hole.
    writeFileSync(image, Buffer.alloc(DISK_MIB << 20, 0x5a));

    const blk = new VirtioBlk({ path: image });
    closers.push(() => blk.close());
    const nvme = await createNvmeController(image, DEFAULT_IDENTITY);
    closers.push(() => nvme.namespace.close());
    const nvmePlain = await createNvmeController(image, { ...DEFAULT_IDENTITY, serial: 'VFU0002' }, { doorbellBuffer: false });
    closers.push(() => nvmePlain.namespace.close());
    const qemuBlk: Target = { key: 'qemu-blk', label: 'QEMU virtio-blk-pci', slot: 4, builtIn: { driver: 'virtio-blk-pci' } };
    const qemuNvme: Target = { key: 'qemu-nvme', label: 'QEMU nvme', slot: 7, builtIn: { driver: 'nvme', properties: ',serial=QEMU0001' } };
    const everyTarget: Target[] = [
      { key: 'blk', label: 'our virtio-blk (shared memfd)', slot: 3, device: blk, versus: qemuBlk.key },
      qemuBlk,
      { key: 'nvme', label: 'our NVMe, doorbell buffer (shared memfd)', slot: 5, device: nvme, nvme, versus: qemuNvme.key },
      { key: 'nvme-plain', label: 'our NVMe, no doorbell buffer (shared memfd)', slot: 6, device: nvmePlain, nvme: nvmePlain, versus: qemuNvme.key },
      qemuNvme,
    ];
    const shared = everyTarget.filter((t) => DEVICE_KEYS?.has(t.key) ?? true);
    const sharedRun = await runGuest('shared guest memory', image, program, shared, true, WORKLOADS, REPS);
    rows.push(...sharedRun.rows);
    raw.shared = sharedRun.raw;

    if (process.env.BENCH_BLOCK_DMA_MESSAGES === '1') {
      // NVMe only, to keep the run short (virtio-blk on this path is covered by test/guest/virtio.test.ts).
      const nvmeByMessages = await createNvmeController(image, { ...DEFAULT_IDENTITY, serial: 'VFU0003' });
      closers.push(() => nvmeByMessages.namespace.close());
      const messages: Target[] = [
        { key: 'nvme', label: 'our NVMe, doorbell buffer (DMA messages)', slot: 5, device: nvmeByMessages, nvme: nvmeByMessages, versus: qemuNvme.key },
        qemuNvme,
      ];
      const reps = Math.max(1, Math.ceil(REPS / 2));
      const messageRun = await runGuest('guest memory by DMA messages', image, program, messages, false,
        WORKLOADS, reps);
      rows.push(...messageRun.rows);
      raw.dmaMessages = messageRun.raw;
    }
  } finally {
    for (const close of closers) {
      await close();
    }
    rmSync(dir, { recursive: true, force: true });
  }

  const seconds = (Date.now() - started) / 1000;
  process.stdout.write(`\nblock devices in one TCG guest (${machine}, load average ${load.toFixed(2)} at the start)\n`);
  process.stdout.write(`${renderBlockTable(rows).join('\n')}\n`);
  process.stdout.write(`\nours ÷ QEMU: our rate over QEMU's built-in device's, the median of the ratios within each of ${REPS} ` +
    `repetitions (target >= 0.5). CPU per request: of this process (our server) and of QEMU (guest and its devices). ` +
    `Doorbells, commands: MMIO doorbell writes our NVMe received and commands it ran, per request. ${seconds.toFixed(0)} s.\n`);
  mkdirSync(RESULTS, { recursive: true });
  const json = JSON.stringify({
    date: new Date().toISOString(), machine, loadAverage: load, seconds,
    config: { reps: REPS, milliseconds: MS, diskMiB: DISK_MIB }, rows, raw,
  }, null, 2);
  writeFileSync(path.join(RESULTS, 'block-latest.json'), json);
  writeFileSync(path.join(RESULTS, 'block-latest.md'), renderBlockMarkdown(rows, `${machine}, load average ${load.toFixed(2)}`));
  log('written to bench/results/block-latest.json and block-latest.md');
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
