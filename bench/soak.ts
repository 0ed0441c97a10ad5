/**
 * The soak: 10,000 connect/negotiate/access/disconnect cycles, then one
 * million BAR accesses, against the TypeScript device of the benchmarks
 * (bench/ts_device.ts) served in a process of its own, driven by a C client
 * in another (bench/soak_client.c), as QEMU would. Between batches it prints
 * the server's open fds and resident memory, and at the end whether they
 * stayed flat:
 *
 * - open fds: the same at every sample (taken with no client connected);
 * - RSS: within each phase, from the sample after its first batch (the
 *   warm-up: the JIT compiles that phase's path, the heap grows to its
 *   working size) to the end of the phase, it rises by at most
 *   SOAK_RSS_SLACK_MIB (default 4 MiB).
 *
 * usage: npm run soak   (SOAK_CYCLES, SOAK_ACCESSES and SOAK_BATCHES change the counts)
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { C_FLAGS, CC, envInt, findRoot, run, sleep, waitForSocket } from './support';

const ROOT = findRoot(__dirname);
const CLIENT = path.join(ROOT, 'bench', 'results', 'bin', 'soak_client');
const TS_DEVICE = path.join(ROOT, 'bench', 'results', 'js', 'ts_device.js');
const CYCLES = envInt('SOAK_CYCLES', 10_000);
const ACCESSES = envInt('SOAK_ACCESSES', 1_000_000);
const BATCHES = envInt('SOAK_BATCHES', 10);
const RSS_SLACK_MIB = envInt('SOAK_RSS_SLACK_MIB', 4);

interface Sample {
  readonly label: string;
  readonly fds: number;
  readonly rssKiB: number;
  readonly seconds: number;
}

function sample(pid: number, label: string, start: number): Sample {
  const fds = fs.readdirSync(`/proc/${pid}/fd`).length;
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKiB = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN);
  return { label, fds, rssKiB, seconds: (Date.now() - start) / 1000 };
}

function runClient(mode: 'cycles' | 'accesses', socket: string, n: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(CLIENT, [mode, socket, String(n)], { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`soak: soak_client ${mode} exited with ${code}`))));
  });
}

/** Waits until the server has seen the last client go: its fd count stops changing. */
async function settle(pid: number): Promise<void> {
  let last = -1;
  for (let i = 0; i < 50; i++) {
    await sleep(20);
    const fds = fs.readdirSync(`/proc/${pid}/fd`).length;
    if (fds === last) {
      return;
    }
    last = fds;
  }
}

function mib(kib: number): string {
  return (kib / 1024).toFixed(1);
}

async function main(): Promise<number> {
  fs.mkdirSync(path.dirname(CLIENT), { recursive: true });
  run(ROOT, CC, [
    ...C_FLAGS, '-Ivendor/libvfio-user/test', 'bench/soak_client.c',
    ...fs.readdirSync(path.join(ROOT, 'vendor/libvfio-user/test')).filter((f) => /^client_.*\.c$/.test(f))
      .map((f) => `vendor/libvfio-user/test/${f}`),
    '-o', CLIENT,
  ], 'soak: compiling soak_client');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vfu-soak-'));
  const socket = path.join(dir, 'soak.sock');
  const server = spawn(process.execPath, [TS_DEVICE, socket], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  const pid = server.pid ?? 0;
  try {
    await waitForSocket(socket, server, 'soak: the TypeScript device did not start');
    const start = Date.now();
    const samples: Sample[] = [sample(pid, 'start', start)];
    let rssRise = 0;
    const report = (s: Sample): void => {
      process.stdout.write(`${s.label.padEnd(24)} ${String(s.fds).padStart(4)} fds  ${mib(s.rssKiB).padStart(7)} MiB RSS  ${s.seconds.toFixed(1).padStart(6)} s\n`);
    };
    process.stdout.write(`soak: TypeScript device pid ${pid}, ${CYCLES} cycles, ${ACCESSES} BAR accesses, node ${process.version}\n`);
    report(samples[0]);
    const phases: Array<['cycles' | 'accesses', number]> = [['cycles', CYCLES], ['accesses', ACCESSES]];
    for (const [mode, total] of phases) {
      const per = Math.ceil(total / BATCHES);
      let warm: Sample | undefined;
      for (let done = 0; done < total; ) {
        const n = Math.min(per, total - done);
        await runClient(mode, socket, n);
        done += n;
        await settle(pid);
        const s = sample(pid, `${mode} ${done}`, start);
        samples.push(s);
        warm ??= s;
        rssRise = Math.max(rssRise, s.rssKiB - warm.rssKiB);
        report(s);
      }
    }
    const fdsFlat = samples.every((s) => s.fds === samples[0].fds);
    const rssFlat = rssRise <= RSS_SLACK_MIB * 1024;
    const last = samples[samples.length - 1];
    process.stdout.write(
      `soak: fds ${samples[0].fds} -> ${last.fds} (${fdsFlat ? 'flat' : 'NOT FLAT'}); ` +
        `RSS ${mib(samples[0].rssKiB)} -> ${mib(last.rssKiB)} MiB, ` +
        `rising at most ${mib(rssRise)} MiB within a phase after its first batch (${rssFlat ? 'flat' : 'NOT FLAT'}, limit ${RSS_SLACK_MIB} MiB); ` +
        `${last.seconds.toFixed(0)} s\n`,
    );
    return fdsFlat && rssFlat ? 0 : 1;
  } finally {
    server.kill('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  (status) => {
    process.exitCode = status;
  },
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
