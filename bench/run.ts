/**
 * `npm run bench`: builds what the benchmarks need, starts the servers (a
 * bare socket peer, the C device, the TypeScript device), drives every one
 * with the same C client (bench/bench_client.c), prints a table and writes
 * it with the raw numbers as JSON under bench/results/ (git-ignored).
 *
 * Latency is measured with servers and client pinned to one CPU (taskset
 * -c 0), the implementations interleaved (A, B, A, B, ...), and each ratio
 * is the median over the repetitions of the ratio within a repetition, so
 * that a slowdown of the whole machine during one repetition cancels out.
 *
 * Sizes can be changed for a quick try: BENCH_REPS, BENCH_N, BENCH_WARMUP
 * (latency), BENCH_THROUGHPUT_REPS, BENCH_IRQ_COUNT (interrupts and DMA),
 * BENCH_STARTUP_REPS, BENCH_SCALE_ROUNDS and BENCH_SCALE_REQUESTS (bench/scale.ts).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { scaleRows } from './scale';
import { C_FLAGS, CC, envInt, findRoot, onCpu, run, sleep, stopProcess, waitForSocket } from './support';

const ROOT = findRoot(__dirname);
const RESULTS = path.join(ROOT, 'bench', 'results');
const BIN = path.join(RESULTS, 'bin');
const CLIENT = path.join(BIN, 'bench_client');
const TS_DEVICE = path.join(RESULTS, 'js', 'ts_device.js');
const TS_FLEET = path.join(RESULTS, 'js', 'ts_fleet.js');
const ADDON_FLOOR = path.join(RESULTS, 'js', 'addon_floor.js');

const REPS = envInt('BENCH_REPS', 11);
const N = envInt('BENCH_N', 10000);
const WARMUP = envInt('BENCH_WARMUP', 3000);
const IRQ_REPS = envInt('BENCH_THROUGHPUT_REPS', 7);
const IRQ_COUNT = envInt('BENCH_IRQ_COUNT', 50000);
const STARTUP_REPS = envInt('BENCH_STARTUP_REPS', 5);
const SCALE_ROUNDS = envInt('BENCH_SCALE_ROUNDS', 100);
const SCALE_REQUESTS = envInt('BENCH_SCALE_REQUESTS', 50000);

/** CPU every latency run is pinned to; the start-up client spins on another. */
const CPU = '0';
const OTHER_CPU = os.cpus().length > 1 ? '1' : '0';

// ------------------------------------------------------------------ building

function build(): void {
  log('building the C library (scripts/build-c.sh)');
  run(ROOT, 'bash', ['scripts/build-c.sh'], 'bench: building the C library');

  // The addon, incrementally: the benchmark measures the current native/.
  const addon = path.join(ROOT, 'build', 'Release', 'vfio_user.node');
  const configured = fs.existsSync(path.join(ROOT, 'build', 'Makefile'));
  const gyp = spawnSync('node-gyp', [configured ? 'build' : 'rebuild'], { cwd: ROOT, encoding: 'utf8' });
  if (gyp.error !== undefined || gyp.status !== 0) {
    if (!fs.existsSync(addon)) {
      process.stderr.write(gyp.stderr ?? '');
      throw new Error('bench: the addon is not built and node-gyp failed (run "npm install")');
    }
    log(`node-gyp is not usable here (${gyp.error?.message ?? 'failed'}): measuring the addon as built`);
  }

  fs.mkdirSync(BIN, { recursive: true });
  const flags = [...C_FLAGS, '-g'];
  log(`compiling bench/*.c with ${CC}`);
  const testClient = fs.readdirSync(path.join(ROOT, 'vendor/libvfio-user/test')).filter((f) => /^client_.*\.c$/.test(f))
    .map((f) => `vendor/libvfio-user/test/${f}`);
  run(ROOT, CC, [...flags, '-Ivendor/libvfio-user/test', 'bench/bench_client.c', ...testClient,
    '-o', CLIENT], 'bench: compiling bench_client');
  run(ROOT, CC, [...flags, 'bench/echo_peer.c', '-o', path.join(BIN, 'echo_peer')], 'bench: compiling echo_peer');
  run(ROOT, CC, [...flags, '-Ivendor/libvfio-user/test', 'bench/fleet_client.c', ...testClient,
    '-o', path.join(BIN, 'fleet_client')], 'bench: compiling fleet_client');
  // Linked statically, like the addon links the library.
  run(ROOT, CC, [...flags, 'bench/c_device.c', 'build-c/libvfio-user.a', '-o', path.join(BIN, 'c_device')],
    'bench: compiling c_device');
  if (!fs.existsSync(TS_DEVICE)) {
    throw new Error(`bench: ${TS_DEVICE} is missing (npm run bench compiles bench/*.ts first)`);
  }
}

// ------------------------------------------------------------------- servers

interface Server {
  readonly name: string;
  readonly socket: string;
  readonly proc: ChildProcess;
  readonly pid: number;
}

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) {
    child.kill('SIGKILL');
  }
});

let pinning = true;

function pinned(cpu: string, argv: string[]): [string, string[]] {
  return onCpu(pinning ? cpu : undefined, argv);
}

async function startServer(name: string, argv: string[], socket: string, cpu = CPU): Promise<Server> {
  const [cmd, args] = pinned(cpu, argv);
  const proc = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
  await waitForSocket(socket, proc, `bench: ${name} did not start listening on ${socket}`);
  return { name, socket, proc, pid: proc.pid ?? 0 };
}

function stopServer(server: Server): Promise<void> {
  return stopProcess(server.proc);
}

/** Runs a measuring program pinned to `cpu` and parses the JSON it prints. */
function measure(what: string, argv: string[], cpu = CPU): unknown {
  const [cmd, args] = pinned(cpu, argv);
  const result = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8', timeout: 180000 });
  if (result.error !== undefined || result.status !== 0) {
    process.stderr.write(result.stderr ?? '');
    throw new Error(`bench: ${what} failed (${result.error?.message ?? `exit ${String(result.status)}`})`);
  }
  return JSON.parse(result.stdout);
}

function client(args: string[], cpu = CPU): unknown {
  return measure(`bench_client ${args[0]}`, [CLIENT, ...args], cpu);
}

// --------------------------------------------------------------------- table

interface Row {
  group: string;
  name: string;
  /** Short name by which other rows name this one as their baseline. */
  id?: string;
  /** The value in `unit`, or undefined for "n/a". */
  value?: number;
  unit: string;
  p99?: number;
  /** The id of the baseline row. */
  baseline?: string;
  /** Cost relative to the baseline: > 1 is slower (time ratio, or inverse rate ratio). */
  ratio?: number;
  /** Server CPU time per request, µs. */
  cpu?: number;
}

function median(values: number[]): number {
  const v = [...values].sort((a, b) => a - b);
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

function fmt(value: number | undefined, digits = 2): string {
  if (value === undefined) {
    return 'n/a';
  }
  if (value >= 1000) {
    return value.toFixed(0);
  }
  return value.toFixed(digits);
}

function renderTable(rows: Row[]): string[] {
  const header = ['measurement', 'median', 'p99', 'unit', 'x baseline', 'baseline', 'server CPU/req'];
  const cells = rows.map((r) => [
    r.name,
    fmt(r.value),
    r.p99 === undefined ? '' : fmt(r.p99),
    r.unit,
    r.ratio === undefined ? '' : r.ratio.toFixed(3),
    r.baseline ?? '',
    r.cpu === undefined ? '' : `${r.cpu.toFixed(2)} µs`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]): string =>
    c.map((cell, i) => (i === 0 || i === 3 || i === 5 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  const out = [line(header), widths.map((w) => '-'.repeat(w)).join('  ')];
  let group = '';
  for (let i = 0; i < rows.length; i++) {
    if (rows[i].group !== group) {
      group = rows[i].group;
      out.push(`[${group}]`);
    }
    out.push(line(cells[i]));
  }
  return out;
}

function renderMarkdown(rows: Row[], machine: string): string {
  const out = [
    `Measured ${new Date().toISOString().slice(0, 10)} on ${machine}.`,
    '',
    '| measurement | median | p99 | unit | × baseline | baseline | server CPU/req |',
    '| --- | ---: | ---: | --- | ---: | --- | ---: |',
  ];
  for (const r of rows) {
    out.push(`| ${r.group}: ${r.name} | ${fmt(r.value)} | ${r.p99 === undefined ? '' : fmt(r.p99)} | ${r.unit} | ` +
      `${r.ratio === undefined ? '' : r.ratio.toFixed(3)} | ${r.baseline ?? ''} | ${r.cpu === undefined ? '' : `${r.cpu.toFixed(2)} µs`} |`);
  }
  return `${out.join('\n')}\n`;
}

function log(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

// ---------------------------------------------------------------- the phases

interface LatencySpec {
  key: string;
  /** Short name, shown where this is a baseline. */
  id: string;
  name: string;
  server: Server;
  kind: 'raw' | 'vfu';
  op: 'read' | 'write';
  region: number;
  offset: number;
  baseline?: string;
}

interface LatencyResult {
  name: string;
  rep_medians_ns: number[];
  median_ns: number;
  p99_ns: number;
  server_cpu_ns_per_req?: number;
}

function latencyRows(specs: LatencySpec[], raw: { results: LatencyResult[] }): Row[] {
  const byKey = new Map(raw.results.map((r) => [r.name, r]));
  return specs.map((spec) => {
    const r = byKey.get(spec.key)!;
    const base = spec.baseline === undefined ? undefined : byKey.get(spec.baseline);
    const ratios = base === undefined ? [] : r.rep_medians_ns.map((v, i) => v / base.rep_medians_ns[i]);
    return {
      group: 'latency, pinned to one CPU',
      name: spec.name,
      id: spec.id,
      value: r.median_ns / 1000,
      p99: r.p99_ns / 1000,
      unit: 'µs',
      baseline: base === undefined ? undefined : specs.find((s) => s.key === spec.baseline)!.id,
      ratio: ratios.length > 0 ? median(ratios) : undefined,
      cpu: r.server_cpu_ns_per_req === undefined ? undefined : r.server_cpu_ns_per_req / 1000,
    };
  });
}

/**
 * One start-up measurement: the client is started first and spins on
 * connect() on another CPU, so that the server's time from its setup to the
 * client's attach (the server measures it; the client reads it from BAR0)
 * includes no wait for the client. The client finds the server's pid, for
 * its memory, from the connection (SO_PEERCRED).
 */
interface Resident {
  rss_kb: number;
  rss_anon_kb: number;
  rss_file_kb: number;
}

async function startupOnce(argv: string[], socket: string): Promise<{ startup_ns: number } & Resident> {
  const [ccmd, cargs] = pinned(OTHER_CPU, [CLIENT, 'startup', '--socket', socket]);
  const clientProc = spawn(ccmd, cargs, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(clientProc);
  let out = '';
  clientProc.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  const clientDone = new Promise<number | null>((resolve) => clientProc.once('exit', (code) => resolve(code)));
  await sleep(30);  // the client is spinning on connect() by now
  const [cmd, args] = pinned(CPU, argv);
  const proc = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
  const code = await clientDone;
  children.delete(clientProc);
  await stopProcess(proc);
  if (code !== 0) {
    throw new Error(`bench: bench_client startup failed (exit ${String(code)})`);
  }
  return JSON.parse(out) as { startup_ns: number } & Resident;
}

/**
 * Where `device.msix()` spends beyond its eventfd write (bench/addon_floor.ts,
 * in one process): the whole call, the addon's trigger call alone, and an
 * addon getter, the floor of any call from JS into the addon.
 */
function addonFloorRows(socket: string, raw: Record<string, unknown>): Row[] {
  const floor = measure('addon_floor', [process.execPath, ADDON_FLOOR, socket, String(IRQ_REPS), String(IRQ_COUNT)]) as {
    ns_per_call: { msix: number; addonTrigger: number; addonGetter: number };
  };
  raw.addon_floor = floor;
  const group = 'where device.msix() spends (one process, CPU time per call, pinned)';
  const { msix, addonTrigger, addonGetter } = floor.ns_per_call;
  return [
    { group, name: 'device.msix(0), the eventfd not drained', value: msix, unit: 'ns' },
    { group, name: 'the addon\'s trigger call alone, as msix() ends in it', value: addonTrigger, unit: 'ns' },
    { group, name: 'an addon getter that returns a field: any call into the addon', value: addonGetter, unit: 'ns' },
  ];
}

async function main(): Promise<void> {
  const started = Date.now();
  if (spawnSync('taskset', ['-c', CPU, 'true']).status !== 0) {
    pinning = false;
    log('taskset is not available: running unpinned, ratios will be noisy');
  }
  build();

  const cpus = os.cpus();
  const machine = `${cpus.length} × ${cpus[0]?.model ?? 'unknown CPU'}, Linux ${os.release()}, Node ${process.version}`;
  const load = os.loadavg()[0];
  log(`machine: ${machine}; load average ${load.toFixed(2)}`);
  if (load > 0.5) {
    log('the machine is busy: other processes on CPU 0 slow some repetitions (the ratios pair repetitions to cancel this)');
  }

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vfu-bench-'));
  const rows: Row[] = [];
  const raw: Record<string, unknown> = {};
  try {
    // ---- latency, irq, dma: one server of each kind, all on CPU 0.
    const floor = await startServer('echo', [path.join(BIN, 'echo_peer'), path.join(dir, 'floor.sock'), 'poll1'], path.join(dir, 'floor.sock'));
    const framed = await startServer('echo framed', [path.join(BIN, 'echo_peer'), path.join(dir, 'framed.sock'), 'poll'], path.join(dir, 'framed.sock'));
    const cdev = await startServer('C device', [path.join(BIN, 'c_device'), path.join(dir, 'c.sock')], path.join(dir, 'c.sock'));
    const tsdev = await startServer('TS device', [process.execPath, TS_DEVICE, path.join(dir, 'ts.sock')], path.join(dir, 'ts.sock'));

    const specs: LatencySpec[] = [
      { key: 'floor-r', id: 'socket', name: 'bare socket (poll, 1 recv, send), read sizes 32/36 B', server: floor, kind: 'raw', op: 'read', region: 0, offset: 4 },
      { key: 'framed-r', id: 'socket framed', name: 'bare socket, header and body read apart', server: framed, kind: 'raw', op: 'read', region: 0, offset: 4, baseline: 'floor-r' },
      { key: 'floor-w', id: 'socket (write)', name: 'bare socket (poll, 1 recv, send), write sizes 36/32 B', server: floor, kind: 'raw', op: 'write', region: 0, offset: 4 },
      { key: 'c-r', id: 'C read', name: 'C device: BAR 4-byte read', server: cdev, kind: 'vfu', op: 'read', region: 0, offset: 4, baseline: 'floor-r' },
      { key: 'c-w', id: 'C write', name: 'C device: BAR 4-byte write', server: cdev, kind: 'vfu', op: 'write', region: 0, offset: 4, baseline: 'floor-w' },
      { key: 'c-cfg', id: 'C config', name: 'C device: config 4-byte read', server: cdev, kind: 'vfu', op: 'read', region: 7, offset: 0, baseline: 'floor-r' },
      { key: 'ts-r', id: 'TS read', name: 'TS device: BAR handler 4-byte read', server: tsdev, kind: 'vfu', op: 'read', region: 0, offset: 4, baseline: 'c-r' },
      { key: 'ts-reg-r', id: 'TS regmap read', name: 'TS device: RegisterMap 4-byte read', server: tsdev, kind: 'vfu', op: 'read', region: 1, offset: 4, baseline: 'c-r' },
      { key: 'ts-w', id: 'TS write', name: 'TS device: BAR handler 4-byte write', server: tsdev, kind: 'vfu', op: 'write', region: 0, offset: 4, baseline: 'c-w' },
      { key: 'ts-reg-w', id: 'TS regmap write', name: 'TS device: RegisterMap 4-byte write', server: tsdev, kind: 'vfu', op: 'write', region: 1, offset: 4, baseline: 'c-w' },
      { key: 'ts-cfg', id: 'TS config', name: 'TS device: config 4-byte read', server: tsdev, kind: 'vfu', op: 'read', region: 7, offset: 0, baseline: 'c-cfg' },
    ];
    log(`latency: ${specs.length} measurements, ${REPS} interleaved repetitions of ${N} requests`);
    const latency = client(['latency', '--reps', String(REPS), '--n', String(N), '--warmup', String(WARMUP),
      ...specs.map((s) => `${s.key}=${s.server.socket},${s.kind},${s.op},${s.region},${s.offset},${s.server.pid}`)]) as { results: LatencyResult[] };
    raw.latency = latency;
    rows.push(...latencyRows(specs, latency));

    log(`interrupts: ${IRQ_REPS} repetitions of ${IRQ_COUNT} triggers`);
    const irqRows = (kind: string, args: string[]): void => {
      const result = client(['irq', '--reps', String(IRQ_REPS), '--count', String(IRQ_COUNT), ...args,
        `c=${cdev.socket},${cdev.pid}`, `ts=${tsdev.socket},${tsdev.pid}`]) as {
        results: Array<{ rep_per_s: number[]; median_per_s: number; server_cpu_ns_per_trigger?: number }>;
      };
      raw[kind === 'during' ? 'irq' : 'irq_drain_after'] = result;
      const [c, ts] = result.results;
      const label = kind === 'during' ? 'client draining the eventfd meanwhile' : 'eventfd drained after';
      const id = kind === 'during' ? 'C trigger' : 'C trigger (alone)';
      // The CPU column is per trigger here.
      const cpu = (r: { server_cpu_ns_per_trigger?: number }): number | undefined =>
        r.server_cpu_ns_per_trigger === undefined ? undefined : r.server_cpu_ns_per_trigger / 1000;
      rows.push({
        group: 'interrupts (MSI-X, pinned to one CPU)', name: `C: vfu_irq_trigger(), ${label}`, id, value: c.median_per_s / 1e6, unit: 'M/s',
        cpu: cpu(c),
      });
      rows.push({
        group: 'interrupts (MSI-X, pinned to one CPU)', name: `TS: device.msix(0), ${label}`, value: ts.median_per_s / 1e6, unit: 'M/s',
        baseline: id, ratio: median(c.rep_per_s.map((v, i) => v / ts.rep_per_s[i])), cpu: cpu(ts),
      });
    };
    irqRows('during', []);
    irqRows('after', ['--drain-after']);
    rows.push(...addonFloorRows(path.join(dir, 'addon-floor.sock'), raw));

    log('DMA: mapped memory, messages, and a loop over 64 MiB of guest memory');
    const dma = client(['dma', '--reps', String(IRQ_REPS), `c=${cdev.socket}`, `ts=${tsdev.socket}`]) as {
      results: Array<{ name: string; op: string; rep_bytes_per_s: number[]; median_bytes_per_s: number }>;
    };
    raw.dma = dma;
    const dmaResults = dma.results;
    const dmaResult = (name: string, op: string): { rep_bytes_per_s: number[]; median_bytes_per_s: number } | undefined => {
      const found = dmaResults.find((r) => r.name === name && r.op === op);
      // -1: the device has no such operation.
      return found === undefined || found.median_bytes_per_s < 0 ? undefined : found;
    };
    const rate = (r: { median_bytes_per_s: number } | undefined): number | undefined => (r === undefined ? undefined : r.median_bytes_per_s / 1e9);
    const cost = (base: { rep_bytes_per_s: number[] } | undefined, r: { rep_bytes_per_s: number[] } | undefined): number | undefined =>
      base === undefined || r === undefined ? undefined : median(base.rep_bytes_per_s.map((v, i) => v / r.rep_bytes_per_s[i]));
    const dmaRows = (group: string, ops: Array<[op: string, tsName: string, cOp: string, cName: string]>): void => {
      for (const [op, tsName, cOp, cName] of ops) {
        const c = dmaResult('c', cOp);
        const ts = dmaResult('ts', op);
        if (!rows.some((r) => r.id === cName)) {
          rows.push({ group, name: `C: ${cName}`, id: cName, value: rate(c), unit: 'GB/s' });
        }
        rows.push({ group, name: `TS: ${tsName}`, value: rate(ts), unit: 'GB/s', baseline: cName, ratio: cost(c, ts) });
      }
    };
    dmaRows('DMA, mapped memory', [
      ['read-sync-4k', 'dma.readSync() 4 KiB into a Buffer it has', 'read-sync-4k', 'memcpy 4 KiB out'],
      ['view-read-4k', 'dma.view() 4 KiB copied into own memory', 'read-sync-4k', 'memcpy 4 KiB out'],
      ['read-async-4k', 'await dma.read() 4 KiB into a Buffer it has', 'read-sync-4k', 'memcpy 4 KiB out'],
      ['write-sync-4k', 'dma.writeSync() 4 KiB', 'write-sync-4k', 'memcpy 4 KiB in'],
      ['read-sync-1m', 'dma.readSync() 1 MiB into a Buffer it has', 'read-sync-1m', 'memcpy 1 MiB out'],
      ['view-read-1m', 'dma.view() 1 MiB copied into own memory', 'read-sync-1m', 'memcpy 1 MiB out'],
      ['read-async-1m', 'await dma.read() 1 MiB into a Buffer it has', 'read-sync-1m', 'memcpy 1 MiB out'],
      ['write-sync-1m', 'dma.writeSync() 1 MiB', 'write-sync-1m', 'memcpy 1 MiB in'],
    ]);
    dmaRows('DMA through DMA_READ/DMA_WRITE messages (the C client answers)', [
      ['msg-read-4k', 'await dma.read() 4 KiB', 'msg-read-4k', 'vfu_sgl_read() 4 KiB'],
      ['msg-write-4k', 'await dma.write() 4 KiB', 'msg-write-4k', 'vfu_sgl_write() 4 KiB'],
      ['msg-read-1m', 'await dma.read() 1 MiB', 'msg-read-1m', 'vfu_sgl_read() 1 MiB'],
      ['msg-write-1m', 'await dma.write() 1 MiB', 'msg-write-1m', 'vfu_sgl_write() 1 MiB'],
    ]);
    const plainSum = dmaResult('ts', 'sum-plain-64m');
    const mappedSum = dmaResult('ts', 'sum-mapped-64m');
    const sgroup64 = 'a TypeScript loop summing 64 MiB (Uint32Array)';
    rows.push({ group: sgroup64, name: 'over a plain Buffer', id: 'plain Buffer', value: rate(plainSum), unit: 'GB/s' });
    rows.push({
      group: sgroup64, name: 'over mapped guest memory (dma.view), target x baseline <= 2', value: rate(mappedSum), unit: 'GB/s',
      baseline: 'plain Buffer', ratio: cost(plainSum, mappedSum),
    });

    for (const server of [floor, framed, cdev, tsdev]) {
      await stopServer(server);
    }

    // ---- start-up and memory: a fresh server each time; the client spins
    // on another CPU so that its connection attempts cost the server nothing.
    log(`start-up: ${STARTUP_REPS} fresh servers of each kind`);
    const startup: Record<string, Array<{ startup_ns: number } & Resident>> = { c: [], ts: [] };
    for (let rep = 0; rep < STARTUP_REPS; rep++) {
      for (const kind of ['c', 'ts'] as const) {
        const socket = path.join(dir, `start-${kind}-${rep}.sock`);
        const argv = kind === 'c' ? [path.join(BIN, 'c_device'), socket] : [process.execPath, TS_DEVICE, socket];
        const result = await startupOnce(argv, socket);
        startup[kind].push(result);
      }
    }
    raw.startup = startup;
    const idle = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1e9)'], { stdio: 'ignore' });
    children.add(idle);
    await sleep(500);
    const nodeResident = client(['rss', '--pid', String(idle.pid)]) as Resident;
    const nodeRss = nodeResident.rss_kb;
    idle.kill('SIGKILL');
    raw.node_idle_rss = nodeResident;
    const ms = (kind: string): number[] => startup[kind].map((s) => s.startup_ns / 1e6);
    const resident = (kind: string, part: keyof Resident = 'rss_kb'): number => median(startup[kind].map((s) => s[part])) / 1024;
    const rss = (kind: string): number => resident(kind);
    const sgroup = 'start-up and memory';
    rows.push({ group: sgroup, name: 'C: vfu_create_ctx() to the client attached', id: 'C start', value: median(ms('c')), unit: 'ms' });
    rows.push({
      group: sgroup, name: 'TS: new VfioUserServer() to the client attached', value: median(ms('ts')), unit: 'ms',
      baseline: 'C start', ratio: median(ms('ts').map((v, i) => v / ms('c')[i])),
    });
    rows.push({ group: sgroup, name: 'C device, attached and idle: RSS', id: 'C RSS', value: rss('c'), unit: 'MiB' });
    rows.push({ group: sgroup, name: 'node running an empty loop: RSS', id: 'node RSS', value: nodeRss / 1024, unit: 'MiB' });
    rows.push({
      group: sgroup, name: 'TS device, attached and idle: RSS', value: rss('ts'), unit: 'MiB',
      baseline: 'node RSS', ratio: rss('ts') / (nodeRss / 1024),
    });
    // What the device adds to node: its own private memory, and the pages of
    // node's binary (shared with every node process) that running any JS
    // library of this size touches.
    rows.push({ group: sgroup, name: 'TS device: RSS over node\'s (target <= 4)', value: rss('ts') - nodeRss / 1024, unit: 'MiB' });
    rows.push({
      group: sgroup, name: '  of it private (anonymous) memory', value: resident('ts', 'rss_anon_kb') - nodeResident.rss_anon_kb / 1024,
      unit: 'MiB',
    });
    rows.push({
      group: sgroup, name: '  of it file-backed pages (node\'s binary, the addon; shared)',
      value: resident('ts', 'rss_file_kb') - nodeResident.rss_file_kb / 1024, unit: 'MiB',
    });

    rows.push(...await scaleRows({
      fleetServer: TS_FLEET, fleetClient: path.join(BIN, 'fleet_client'), dir: fs.mkdtempSync(path.join(dir, 'scale-')),
      reps: REPS, rounds: SCALE_ROUNDS, requests: SCALE_REQUESTS, log, cpu: pinning ? CPU : undefined,
    }));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }

  const seconds = (Date.now() - started) / 1000;
  const table = renderTable(rows);
  process.stdout.write(`\n${machine}\n${table.join('\n')}\n`);
  process.stdout.write(`\nx baseline: cost relative to the baseline (time ratio; for rates, baseline rate / rate), ` +
    `the median over repetitions of the ratio within one repetition. p99 is over all requests of all repetitions. ` +
    `Server CPU/req: CPU time of the server's thread per request (kernel included). ${seconds.toFixed(0)} s.\n`);

  fs.mkdirSync(RESULTS, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const json = JSON.stringify({
    date: new Date().toISOString(), machine, loadAverage: load, seconds,
    config: {
      reps: REPS, n: N, warmup: WARMUP, irqReps: IRQ_REPS, irqCount: IRQ_COUNT, startupReps: STARTUP_REPS,
      scaleRounds: SCALE_ROUNDS, scaleRequests: SCALE_REQUESTS, pinned: pinning,
    },
    rows, raw,
  }, null, 2);
  fs.writeFileSync(path.join(RESULTS, `bench-${stamp}.json`), json);
  fs.writeFileSync(path.join(RESULTS, 'latest.json'), json);
  fs.writeFileSync(path.join(RESULTS, 'latest.md'), renderMarkdown(rows, machine));
  log(`written to bench/results/bench-${stamp}.json (and latest.json, latest.md)`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
