/**
 * The `vfio-user` command as a user meets it, in a project of their own:
 * --version and help, device arguments, a .ts device with TypeScript 5 and
 * with TypeScript 7, one-line errors for each way a device file can fail,
 * and no server left behind when npx or the program is sent SIGTERM.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { Region } from 'vfio-user';

import { connect, socketPath } from '../helpers';
import { alive, buildDist, CLI, makeProject, pidsWith, ROOT, start, waitFor, type Run } from './project';

jest.setTimeout(120_000);

const runs: Run[] = [];
const projects: string[] = [];
let ts5: string;

beforeAll(() => {
  buildDist();
  ts5 = makeProject();
  projects.push(ts5);
});

afterEach(() => {
  for (const { child } of runs.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
    }
  }
});

afterAll(() => {
  for (const dir of projects) {
    rmSync(dir, { recursive: true, force: true });
  }
});

function cli(args: readonly string[], cwd: string): Run {
  const run = start(process.execPath, [CLI, ...args], cwd);
  runs.push(run);
  return run;
}

/** Runs the CLI to its end; its exit code and what it printed. */
async function finished(args: readonly string[], cwd = ts5): Promise<{ code: number | null; output: string }> {
  const run = cli(args, cwd);
  const { code } = await run.exited;
  return { code, output: run.output() };
}

/** A factory typed with its arguments: `--id N` sets the device ID. */
const FACTORY_WITH_ARGS = `import { parseArgs } from 'node:util';
import { PciDevice } from 'vfio-user';

export default function makeDevice(args: string[]): PciDevice {
  const { values } = parseArgs({ args, options: { id: { type: 'string' } } });
  return new PciDevice({ vendorId: 0x1af4, deviceId: Number(values.id ?? '0x1000') });
}
`;

async function servesWithDeviceId(project: string, file: string, args: readonly string[], deviceId: number): Promise<void> {
  const socket = socketPath('cli-args');
  const run = cli(['serve', file, '--socket', socket, ...args], project);
  await waitFor(run, () => run.output().includes('serving') || run.child.exitCode !== null);
  expect(run.output()).toContain('serving');
  const client = await connect(socket);
  expect(await client.read16(Region.CONFIG, 2)).toBe(deviceId);
  await client.close();
  run.child.kill('SIGTERM');
  expect((await run.exited).code).toBe(0);
  expect(existsSync(socket)).toBe(false);
}

describe('vfio-user', () => {
  test('--version prints the package version; help and -h print the usage', async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(await finished(['--version'])).toEqual({ code: 0, output: `${version}\n` });
    for (const args of [['help'], ['-h'], ['serve', '--help']]) {
      const { code, output } = await finished(args);
      expect(code).toBe(0);
      expect(output).toMatch(/^usage: vfio-user serve FILE --socket PATH/);
      expect(output).toContain('vfio-user --version');
    }
    const bad = await finished(['serve', 'x.js', '--socket', socketPath(), '--log-level', 'loud']);
    expect(bad.code).toBe(2);
    expect(bad.output).toContain('--log-level takes 0 to 7');
  });

  test('arguments after -- go to the factory (TypeScript 5)', async () => {
    const file = join(ts5, 'with-args.ts');
    writeFileSync(file, FACTORY_WITH_ARGS);
    await servesWithDeviceId(ts5, 'with-args.ts', ['--', '--id', '0x10f3'], 0x10f3);
    await servesWithDeviceId(ts5, 'with-args.ts', [], 0x1000);
  });

  test('TypeScript 7 from the registry: the same device serves; its type errors are reported', async () => {
    const ts7 = makeProject('7');
    projects.push(ts7);
    const installed = JSON.parse(readFileSync(join(ts7, 'node_modules', 'typescript', 'package.json'), 'utf8')) as { version: string };
    expect(installed.version).toMatch(/^7\./);
    writeFileSync(join(ts7, 'with-args.ts'), FACTORY_WITH_ARGS);
    await servesWithDeviceId(ts7, 'with-args.ts', ['--', '--id', '0x10f7'], 0x10f7);

    writeFileSync(join(ts7, 'mistyped.ts'), `import { PciDevice } from 'vfio-user';\nexport default () => new PciDevice({ vendorId: 'red', deviceId: 1 });\n`);
    const { code, output } = await finished(['serve', 'mistyped.ts', '--socket', socketPath()], ts7);
    expect(code).toBe(1);
    expect(output).toContain(`mistyped.ts does not compile (typescript ${installed.version})`);
    expect(output).toMatch(/mistyped\.ts\(2,\d+\): error TS2322/);
  });

  test('each way a device file fails is one clear line, with no stack', async () => {
    const socket = socketPath('cli-errors');
    const cases: [file: string, source: string, expected: RegExp][] = [
      ['throws.js', "module.exports = () => { throw new Error('no backing file'); };\n", /^vfio-user: the default export of throws\.js threw: Error: no backing file \(throws\.js:1:32\)\n$/],
      ['syntax.js', 'module.exports = () => {\n  return (;\n};\n', /^vfio-user: loading syntax\.js failed: SyntaxError: Unexpected token '?;'? \(syntax\.js:2\)\n$/],
      ['top-level.js', "require('node:fs').readFileSync('/nonexistent/disk.img');\n", /^vfio-user: loading top-level\.js failed: Error: ENOENT: no such file or directory, open '\/nonexistent\/disk\.img' \(top-level\.js:1:\d+\)\n$/],
      ['typed.ts', "const size: number = 'big';\nexport default size;\n", /^vfio-user: typed\.ts does not compile \(typescript 5\.[\d.]+\):\ntyped\.ts\(1,7\): error TS2322: Type 'string' is not assignable to type 'number'\.\n$/],
    ];
    for (const [file, source, expected] of cases) {
      writeFileSync(join(ts5, file), source);
      const { code, output } = await finished(['serve', file, '--socket', socket]);
      expect({ file, code, output }).toEqual({ file, code: 1, output: expect.stringMatching(expected) as unknown });
      expect(existsSync(socket)).toBe(false);
    }
    const missing = await finished(['serve', 'nowhere.ts', '--socket', socket]);
    expect(missing).toEqual({ code: 1, output: 'vfio-user: cannot find nowhere.ts\n' });
  });

  test('SIGTERM to npx leaves no server behind: it closes and removes its socket', async () => {
    writeFileSync(join(ts5, 'plain.js'), "const { PciDevice } = require('vfio-user');\nmodule.exports = () => new PciDevice({ vendorId: 0x1af4, deviceId: 0x1001 });\n");
    const socket = socketPath('cli-npx');
    const npx = start('npx', ['--offline', 'vfio-user', 'serve', 'plain.js', '--socket', socket], ts5);
    runs.push(npx);
    await waitFor(npx, () => npx.output().includes('serving'));
    // The node server, below npx and its shell.
    const [server] = pidsWith(`.bin/vfio-user serve plain.js --socket ${socket}`);
    expect(server).toBeGreaterThan(0);
    expect(alive(server)).toBe(true);
    npx.child.kill('SIGTERM');
    await npx.exited;
    await waitFor(npx, () => !alive(server), 5000);
    expect(existsSync(socket)).toBe(false);
  });

  test('a server made from code is closed by SIGTERM, its socket removed, and the process still ends by the signal', async () => {
    const socket = socketPath('code-sigterm');
    writeFileSync(
      join(ts5, 'from-code.js'),
      `const { PciDevice, VfioUserServer } = require('vfio-user');
       new VfioUserServer(new PciDevice({ vendorId: 0x1af4, deviceId: 0x1002 }), { socket: ${JSON.stringify(socket)} });
       console.log('ready');\n`,
    );
    const run = start(process.execPath, ['from-code.js'], ts5);
    runs.push(run);
    await waitFor(run, () => run.output().includes('ready'));
    expect(existsSync(socket)).toBe(true);
    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: null, signal: 'SIGTERM' });
    expect(existsSync(socket)).toBe(false);

    // A program with its own SIGTERM handler decides: the server stays until it closes it.
    writeFileSync(
      join(ts5, 'own-handler.js'),
      `const { PciDevice, VfioUserServer } = require('vfio-user');
       const server = new VfioUserServer(new PciDevice({ vendorId: 0x1af4, deviceId: 0x1003 }), { socket: ${JSON.stringify(socket)} });
       process.on('SIGTERM', () => { console.log('still serving: ' + require('node:fs').existsSync(server.socket)); server.close(); });
       console.log('ready');\n`,
    );
    const own = start(process.execPath, ['own-handler.js'], ts5);
    runs.push(own);
    await waitFor(own, () => own.output().includes('ready'));
    own.child.kill('SIGTERM');
    expect(await own.exited).toEqual({ code: 0, signal: null });
    expect(own.output()).toContain('still serving: true');
    expect(existsSync(socket)).toBe(false);
  });

  test('inspect prints what lspci -vv would, or JSON; a missing socket is one line', async () => {
    writeFileSync(
      join(ts5, 'inspected.js'),
      `const { PciDevice } = require('vfio-user');
       module.exports = () => new PciDevice({
         vendorId: 0x1af4, deviceId: 0x1042, revision: 2, classCode: 0x018000, intx: true,
         bars: [{ index: 0, size: 256, memory: false }, { index: 2, size: 65536, bits64: true, prefetchable: true, mapped: [{ offset: 0x8000, size: 0x8000 }] }],
         msix: { vectors: 8, bar: 4 },
         doorbells: [{ name: 'kick', bar: 2, offset: 0x100, size: 4 }, { name: 'queue 1', bar: 2, offset: 0x104, size: 2, datamatch: 1n }],
       });\n`,
    );
    const socket = socketPath('cli-inspect');
    const server = cli(['serve', 'inspected.js', '--socket', socket], ts5);
    await waitFor(server, () => server.output().includes('serving'));

    const text = await finished(['inspect', socket]);
    expect(text.code).toBe(0);
    expect(text.output).toContain('Device 1af4:1042 (rev 02), class 018000');
    expect(text.output).toContain('Interrupt: pin A');
    expect(text.output).toContain('Region 0: I/O ports [size=256] rw, not mappable');
    expect(text.output).toContain('Region 2: Memory (64-bit, prefetchable) [size=64K] rw, mapped 0x8000+32K');
    expect(text.output).toContain('\t\tDoorbells: 0x100 (4 bytes), 0x104 (2 bytes, =0x1)');
    expect(text.output).toMatch(/Region 4: Memory \(32-bit, non-prefetchable\) \[size=4K\]/);
    expect(text.output).toMatch(/Capabilities: \[[0-9a-f]{2}\] MSI-X: enabled=- masked=- vectors=8 table=BAR4\+0x0 pba=BAR4\+0x/);
    expect(text.output).toContain('Interrupts: INTx 1, MSI 0, MSI-X 8');
    expect(text.output).toContain('Migration: not supported');

    const json = await finished(['inspect', socket, '--json']);
    expect(json.code).toBe(0);
    const report = JSON.parse(json.output) as { bars: Array<{ index: number; kind: string; size: number; doorbells: unknown[] }> };
    expect(report).toMatchObject({ vendorId: 0x1af4, deviceId: 0x1042, classCode: 0x018000, interrupts: { INTx: 1, 'MSI-X': 8 } });
    expect(report.bars.map((bar) => [bar.index, bar.kind, bar.size])).toEqual([
      [0, 'io', 256],
      [2, 'memory', 65536],
      [4, 'memory', 4096],
    ]);
    expect(report.bars[1].doorbells).toEqual([{ offset: 0x100, size: 4 }, { offset: 0x104, size: 2, datamatch: '0x1' }]);

    // The device served on: inspecting is an ordinary client's visit.
    expect(server.child.exitCode).toBe(null);
    expect(await finished(['inspect', join(ts5, 'absent.sock')])).toEqual({
      code: 1,
      output: `vfio-user: cannot inspect ${join(ts5, 'absent.sock')}: no such socket\n`,
    });
    expect((await finished(['inspect'])).code).toBe(2);
  });
});
