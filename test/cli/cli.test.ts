/**
 * The `vfio-user serve` command, run as a separate process from the compiled
 * dist/cli.js (built here when missing or older than lib/), and checked with
 * both our client and the C test client.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { connect, socketPath, until } from '../helpers';
import { tempDir } from '../support/temp-dir';

const ROOT = join(__dirname, '..', '..');
const CLI = join(ROOT, 'dist', 'cli.js');
const DIST_INDEX = join(ROOT, 'dist', 'index.js');
const work = tempDir('vfu-cli-');
const barIo = join(work, 'bar-io');
const children: ChildProcess[] = [];

function newestSource(dir: string): number {
  return Math.max(
    ...readdirSync(dir, { withFileTypes: true }).map((entry) => {
      const path = join(dir, entry.name);
      return entry.isDirectory() ? newestSource(path) : statSync(path).mtimeMs;
    }),
  );
}

beforeAll(() => {
  if (!existsSync(CLI) || statSync(CLI).mtimeMs < newestSource(join(ROOT, 'lib'))) {
    execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json')], { cwd: ROOT });
  }
  const c = join(ROOT, 'vendor', 'libvfio-user');
  execFileSync('cc', [
    '-std=gnu11', '-I', join(c, 'include'), '-I', join(c, 'test'),
    join(__dirname, 'bar-io.c'),
    ...readdirSync(join(c, 'test')).filter((f) => /^client_.*\.c$/.test(f)).map((f) => join(c, 'test', f)),
    '-o', barIo,
  ]);
}, 120000);

afterEach(() => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
    }
  }
});

interface Served {
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `vfio-user serve ...`; resolves once it says it serves (or it exits). */
async function runCli(args: string[]): Promise<Served> {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  let done = false;
  void exited.then(() => (done = true));
  // Starting node and compiling a .ts device takes seconds on a loaded machine, more under ASan.
  await until(() => done || output.includes('serving'), 60000);
  return { child, output: () => output, exited };
}

function cRead(socket: string, region: number, offset: number, width: number): string {
  return execFileSync(barIo, [socket, String(region), String(offset), String(width)]).toString().trim();
}

function cWrite(socket: string, region: number, offset: number, width: number, value: number): void {
  execFileSync(barIo, [socket, String(region), String(offset), String(width), `0x${value.toString(16)}`]);
}

jest.setTimeout(120000);

describe('vfio-user serve', () => {
  test('serves the GPIO example to a C client and ours; SIGTERM removes the socket', async () => {
    const socket = socketPath('gpio');
    const served = await runCli(['serve', 'examples/gpio.ts', '--socket', socket]);
    expect(served.output()).toContain(`serving GpioCard on ${socket}`);
    expect(cRead(socket, 7, 0, 4)).toBe('0x11011b36');
    cWrite(socket, 0, 0x04, 2, 0xbeef);
    expect(cRead(socket, 0, 0x04, 2)).toBe('0xbeef');
    expect(cRead(socket, 0, 0x00, 2)).toBe('0x0'); // inputs, from the read hook
    cWrite(socket, 0, 0x00, 2, 0xffff);
    expect(cRead(socket, 0, 0x00, 2)).toBe('0x0'); // read-only

    const client = await connect(socket);
    expect(await client.read16(0, 0x04)).toBe(0xbeef);
    await client.close();

    served.child.kill('SIGTERM');
    expect(await served.exited).toEqual({ code: 0, signal: null });
    expect(existsSync(socket)).toBe(false);
  });

  test('shutting down with no client connected reports no lost connection', async () => {
    const socket = socketPath('idle');
    const served = await runCli(['serve', 'examples/gpio.ts', '--socket', socket]);
    expect(cRead(socket, 7, 0, 4)).toBe('0x11011b36'); // a client comes and goes
    await until(() => served.output().includes('client disconnected'));
    served.child.kill('SIGTERM');
    expect(await served.exited).toEqual({ code: 0, signal: null });
    expect(served.output().match(/reset \(lost-connection\)/g)).toHaveLength(1);
    expect(served.output()).toMatch(/client disconnected\nvfio-user: SIGTERM: closing\n$/);
  });

  test('a JavaScript module with a device class; SIGINT removes the socket', async () => {
    const file = join(work, 'plain.js');
    writeFileSync(
      file,
      `const { PciDevice, MemoryRegion } = require(${JSON.stringify(DIST_INDEX)});
       class Plain extends PciDevice {
         constructor() { super({ vendorId: 0x1234, deviceId: 0x5678, bars: [{ index: 0, size: 16, handler: new MemoryRegion(16) }] }); }
       }
       module.exports = Plain;`,
    );
    const socket = socketPath('plain');
    const served = await runCli(['serve', file, `--socket=${socket}`]);
    expect(cRead(socket, 7, 0, 4)).toBe('0x56781234');
    cWrite(socket, 0, 8, 8, 0x0102030405);
    expect(cRead(socket, 0, 8, 8)).toBe('0x102030405');
    served.child.kill('SIGINT');
    expect((await served.exited).code).toBe(0);
    expect(existsSync(socket)).toBe(false);
  });

  test('a TypeScript factory that returns a promise; process.exit() removes the socket', async () => {
    const file = join(work, 'later.ts');
    writeFileSync(
      file,
      `import { PciDevice } from ${JSON.stringify(DIST_INDEX)};
       const make = async (): Promise<PciDevice> => new PciDevice({ vendorId: 0x1af4, deviceId: 0x10f0 });
       setTimeout(() => process.exit(3), 3000);
       export default make;`,
    );
    const socket = socketPath('later');
    const served = await runCli(['serve', file, '--socket', socket]);
    expect(cRead(socket, 7, 0, 2)).toBe('0x1af4');
    expect((await served.exited).code).toBe(3);
    expect(existsSync(socket)).toBe(false);
  });

  test('usage errors and modules that are not devices', async () => {
    const usage = await runCli([]);
    expect((await usage.exited).code).toBe(0);
    expect(usage.output()).toContain('usage: vfio-user serve FILE --socket PATH');

    const noSocket = await runCli(['serve', 'examples/gpio.ts']);
    expect((await noSocket.exited).code).toBe(2);
    expect(noSocket.output()).toContain('needs FILE and --socket');

    const unknown = await runCli(['serve', 'examples/gpio.ts', '--socket', socketPath(), '--fast']);
    expect((await unknown.exited).code).toBe(2);

    const missing = await runCli(['serve', 'examples/nothing-here.js', '--socket', socketPath()]);
    expect((await missing.exited).code).toBe(1);
    expect(missing.output()).toContain('cannot find');

    const notDevice = join(work, 'not-device.js');
    writeFileSync(notDevice, 'module.exports = { hello: 1 };');
    const wrong = await runCli(['serve', notDevice, '--socket', socketPath()]);
    expect((await wrong.exited).code).toBe(1);
    expect(wrong.output()).toContain('is not a PciDevice');

    const badDescription = join(work, 'bad.js');
    writeFileSync(
      badDescription,
      `const { PciDevice } = require(${JSON.stringify(DIST_INDEX)});
       module.exports = () => new PciDevice({ vendorId: 1, deviceId: 2, bars: [{ index: 0, size: 100 }] });`,
    );
    const bad = await runCli(['serve', badDescription, '--socket', socketPath()]);
    expect((await bad.exited).code).toBe(1);
    expect(bad.output()).toContain('bars[0].size: must be a power of two');
  });
});
