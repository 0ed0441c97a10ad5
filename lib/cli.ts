#!/usr/bin/env node
/**
 * The `vfio-user` command:
 *
 *     vfio-user serve FILE --socket PATH [--log-level N] [-- DEVICE ARGS...]
 *
 * serves the device that FILE's default export is (or makes: a factory
 * function given the DEVICE ARGS, or a PciDevice subclass) until SIGINT or
 * SIGTERM. FILE is a JavaScript module, or TypeScript compiled (and
 * type-checked) by the project's own `tsc`, 5.x or 7.x.
 *
 * @packageDocumentation
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';

import { CliError } from './cli/cli-error';
import { enableTypeScript } from './cli/typescript';
import { PCI_DEVICE_BRAND, type PciDevice } from './device';
import { VfioUserServer } from './server';

const USAGE = `usage: vfio-user serve FILE --socket PATH [--log-level N] [-- DEVICE ARGS...]
       vfio-user inspect SOCKET [--json]
       vfio-user help | --help | -h
       vfio-user --version

  FILE            a .js or .ts module whose default export is a PciDevice,
                  a function returning one (or a promise of one), or a
                  PciDevice subclass with a no-argument constructor; a .ts
                  file is compiled and type-checked by the project's
                  typescript (5.x or 7.x)
  --socket PATH   the UNIX socket to serve on (removed on exit)
  --log-level N   print the library's messages up to syslog level N (0-7)
  -- ARGS...      given to the factory function as its one argument, an
                  array of strings: (args: string[]) => PciDevice

  inspect         connects to the device on SOCKET as a client and prints
                  what lspci -vv would (--json: as JSON)
`;

/** How often the server checks that the process that started it is still there. */
const PARENT_CHECK_MS = 500;

/** This package's version, from its package.json. */
function packageVersion(): string {
  const roots = [path.join(__dirname, '..'), path.join(__dirname, '..', '..')];
  const root = roots.find((dir) => existsSync(path.join(dir, 'package.json'))) ?? roots[0];
  return (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;
}

interface ServeArgs {
  readonly file: string;
  readonly socket: string;
  readonly logLevel?: number;
  /** What follows `--`, for the device's factory. */
  readonly deviceArgs: readonly string[];
  /** The process that started this one, noted before the (maybe slow) loading. */
  readonly parent: number;
}

interface InspectArgs {
  readonly inspect: string;
  readonly json: boolean;
}

function parseInspect(rest: readonly string[]): InspectArgs {
  const json = rest.includes('--json');
  const others = rest.filter((arg) => arg !== '--json');
  if (others.length !== 1 || others[0].startsWith('-')) {
    throw new CliError(`inspect needs one SOCKET${others.length > 1 ? `, not ${others.join(' ')}` : ''}\n${USAGE}`, 2);
  }
  return { inspect: others[0], json };
}

function parseArgs(argv: readonly string[]): ServeArgs | InspectArgs | 'help' | 'version' {
  const separator = argv.indexOf('--');
  const own = separator < 0 ? argv : argv.slice(0, separator);
  const deviceArgs = separator < 0 ? [] : argv.slice(separator + 1);
  if (own.length === 0 || own[0] === 'help' || own.includes('--help') || own.includes('-h')) {
    return 'help';
  }
  if (own[0] === '--version' || own[0] === '-v' || own[0] === 'version') {
    return 'version';
  }
  const [command, ...rest] = own;
  if (command === 'inspect') {
    return parseInspect(rest);
  }
  if (command !== 'serve') {
    throw new CliError(`unknown command ${JSON.stringify(command)}\n${USAGE}`, 2);
  }
  let file: string | undefined;
  let socket: string | undefined;
  let logLevel: number | undefined;
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i];
    const [name, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      const v = inline ?? rest[++i];
      if (v === undefined) {
        throw new CliError(`${name} needs a value\n${USAGE}`, 2);
      }
      return v;
    };
    if (name === '--socket' || name === '--socket-path') {
      socket = value();
    } else if (name === '--log-level') {
      const text = value();
      logLevel = Number(text);
      if (!/^[0-7]$/.test(text)) {
        throw new CliError(`--log-level takes 0 to 7, not ${JSON.stringify(text)}`, 2);
      }
    } else if (name.startsWith('-')) {
      throw new CliError(`unknown option ${name}\n${USAGE}`, 2);
    } else if (file === undefined) {
      file = arg;
    } else {
      throw new CliError(`one FILE only, not also ${JSON.stringify(arg)}\n${USAGE}`, 2);
    }
  }
  if (file === undefined || socket === undefined) {
    throw new CliError(`serve needs FILE and --socket PATH\n${USAGE}`, 2);
  }
  return { file, socket, logLevel, deviceArgs, parent: process.ppid };
}

function isDevice(value: unknown): value is PciDevice {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[PCI_DEVICE_BRAND] === true;
}

function isClass(fn: object): boolean {
  return /^class[\s{]/.test(Function.prototype.toString.call(fn));
}

/**
 * Where in the user's files an error comes from: the first stack frame
 * under `dir` (a SyntaxError's stack starts with its `file:line` instead).
 */
function whereInUserCode(err: Error, dir: string): string {
  const lines = (err.stack ?? '').split('\n');
  if (err instanceof SyntaxError && lines[0].startsWith(dir)) {
    return lines[0];
  }
  for (const line of lines) {
    const frame = /\(?((\/[^()]+):\d+:\d+)\)?$/.exec(line.trim());
    if (frame !== null && frame[2].startsWith(dir) && !frame[2].includes('/node_modules/')) {
      return frame[1];
    }
  }
  return '';
}

/** An error thrown by the user's module or factory, as one line with its place. */
function userCodeError(what: string, err: unknown, absolute: string): CliError {
  if (err instanceof CliError) {
    return err;
  }
  const where = err instanceof Error ? whereInUserCode(err, path.dirname(absolute)) : '';
  const text = err instanceof Error ? `${err.name}: ${err.message.split('\n')[0]}` : String(err);
  return new CliError(`${what}: ${text}${where === '' ? '' : ` (${path.relative(process.cwd(), where)})`}`, 1);
}

/** Loads FILE and makes its device, giving a factory the device arguments. */
async function loadDevice(file: string, deviceArgs: readonly string[]): Promise<PciDevice> {
  const absolute = path.resolve(file);
  if (!existsSync(absolute)) {
    throw new CliError(`cannot find ${file}`, 1);
  }
  if (/\.c?ts$/.test(absolute)) {
    enableTypeScript(absolute);
  }
  let exported: unknown;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- the user's file, found at run time, loads as CommonJS
    const loaded = require(absolute) as { default?: unknown };
    exported = loaded !== null && typeof loaded === 'object' && 'default' in loaded ? loaded.default : loaded;
  } catch (err) {
    throw userCodeError(`loading ${file} failed`, err, absolute);
  }
  let device = exported;
  if (typeof exported === 'function') {
    try {
      device = isClass(exported)
        ? new (exported as new () => unknown)()
        : await (exported as (args: string[]) => unknown)([...deviceArgs]);
    } catch (err) {
      throw userCodeError(`the default export of ${file} threw`, err, absolute);
    }
  }
  if (!isDevice(device)) {
    throw new CliError(`the default export of ${file} is not a PciDevice, nor a factory or class making one`, 1);
  }
  return device;
}

function log(message: string): void {
  process.stderr.write(`vfio-user: ${message}\n`);
}

async function serve(args: ServeArgs): Promise<void> {
  const device = await loadDevice(args.file, args.deviceArgs);
  let server: VfioUserServer;
  try {
    server = new VfioUserServer(device, { socket: args.socket, logLevel: args.logLevel });
  } catch (err) {
    if (err instanceof TypeError && err.message.includes('not a constructed PciDevice')) {
      throw new CliError(`${args.file} made its device with another copy of vfio-user: import it as 'vfio-user'`, 1);
    }
    throw err;
  }
  server.on('connect', () => log('client connected'));
  server.on('disconnect', () => log('client disconnected'));
  server.on('reset', (kind) => log(`reset (${kind})`));
  server.on('migration', (state, previous) => log(`migration: ${previous} -> ${state}`));
  server.on('error', (err) => log(`error: ${err.message}`));
  server.on('log', (level, message) => log(`[${level}] ${message}`));
  const stop = (reason: string): void => {
    log(`${reason}: closing`);
    void server.close(); // the socket is closed when close() returns: nothing to wait for before exiting
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  // npx (npm exec) ends on SIGTERM without passing it on, and so does the
  // shell it runs us in: under npx, a parent that goes away is taken as a
  // SIGTERM, so that no server is left orphaned on its socket. (Started
  // otherwise, the server may outlive its parent on purpose: `serve ... &`.)
  if (process.env.npm_command === 'exec') {
    setInterval(() => {
      if (process.ppid !== args.parent) {
        stop('the parent process exited');
      }
    }, PARENT_CHECK_MS).unref();
  }
  log(`serving ${device.constructor.name} on ${args.socket}`);
}

/** Runs the command line; resolves with the exit status when it is not going to keep serving. */
export async function main(argv: readonly string[]): Promise<number | undefined> {
  try {
    const args = parseArgs(argv);
    if (args === 'help') {
      process.stdout.write(USAGE);
      return 0;
    }
    if (args === 'version') {
      process.stdout.write(`${packageVersion()}\n`);
      return 0;
    }
    if ('inspect' in args) {
      // Loaded here only: it brings in the client, which serving never needs.
      const { formatReport, inspectDevice } = await import('./cli/inspect');
      const report = await inspectDevice(args.inspect).catch((err: Error & { code?: string }) => {
        throw new CliError(`cannot inspect ${args.inspect}: ${err.code === 'ENOENT' ? 'no such socket' : err.message}`, 1);
      });
      process.stdout.write(args.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
      return 0;
    }
    await serve(args);
    return undefined;
  } catch (err) {
    if (err instanceof CliError) {
      log(err.message);
      return err.status;
    }
    // Errors of the device API explain themselves; a stack would be noise.
    if (err instanceof Error && ['DeviceDescriptionError', 'OptionsError', 'ConfigurationError', 'VfioUserError'].includes(err.name)) {
      log(`${err.name}: ${err.message}`);
      return 1;
    }
    log(err instanceof Error ? (err.stack ?? err.message) : String(err));
    return 1;
  }
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((status) => {
    if (status !== undefined) {
      process.exitCode = status;
    }
  });
}
