#!/usr/bin/env node
/**
 * The `vfio-user` command:
 *
 *     vfio-user serve FILE --socket PATH [--log-level N]
 *
 * serves the device that FILE's default export is (or makes: a factory
 * function, or a PciDevice subclass) until SIGINT or SIGTERM. FILE is a
 * JavaScript module, or TypeScript compiled on the fly when the `typescript`
 * package can be found.
 *
 * @packageDocumentation
 */
import { readFileSync } from 'node:fs';
import Module from 'node:module';
import * as path from 'node:path';

import { PCI_DEVICE_BRAND, type PciDevice } from './device';
import { VfioUserServer } from './server';

const USAGE = `usage: vfio-user serve FILE --socket PATH [--log-level N]

  FILE            a .js or .ts module whose default export is a PciDevice,
                  a function returning one (or a promise of one), or a
                  PciDevice subclass with a no-argument constructor
  --socket PATH   the UNIX socket to serve on (removed on exit)
  --log-level N   print the library's messages up to syslog level N (0-7)
`;

/** A problem worth a one-line message and an exit status, not a stack trace. */
class CliError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

interface ServeArgs {
  readonly file: string;
  readonly socket: string;
  readonly logLevel?: number;
}

function parseArgs(argv: readonly string[]): ServeArgs | 'help' {
  if (argv.length === 0 || argv.includes('--help') || argv.includes('-h')) {
    return 'help';
  }
  const [command, ...rest] = argv;
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
      logLevel = Number(value());
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
  return { file, socket, logLevel };
}

interface TypeScriptCompiler {
  transpileModule(
    input: string,
    options: { compilerOptions: Record<string, unknown>; fileName: string },
  ): { outputText: string };
  ModuleKind: { CommonJS: number };
  ScriptTarget: { ES2022: number };
}

type ModuleInternals = typeof Module & {
  _extensions: Record<string, (module: Module & { _compile(code: string, filename: string): void }, filename: string) => void>;
};

/** Lets `require` load .ts files by transpiling them with the `typescript` package. */
function enableTypeScript(file: string): void {
  let ts: TypeScriptCompiler;
  try {
    const found = require.resolve('typescript', { paths: [path.dirname(file), process.cwd(), __dirname] });
    ts = require(found) as TypeScriptCompiler;
  } catch {
    throw new CliError(
      `${file} is TypeScript, and the typescript package is not installed: install it (npm install --save-dev typescript) or compile ${path.basename(file)} to JavaScript`,
      1,
    );
  }
  const extensions = (Module as ModuleInternals)._extensions;
  extensions['.ts'] = (module, filename) => {
    const { outputText } = ts.transpileModule(readFileSync(filename, 'utf8'), {
      fileName: filename,
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true, sourceMap: false },
    });
    module._compile(outputText, filename);
  };
}

function isDevice(value: unknown): value is PciDevice {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[PCI_DEVICE_BRAND] === true;
}

function isClass(fn: Function): boolean {
  return /^class[\s{]/.test(Function.prototype.toString.call(fn));
}

/** Loads FILE and makes its device. */
async function loadDevice(file: string): Promise<PciDevice> {
  const absolute = path.resolve(file);
  if (/\.[cm]?ts$/.test(absolute)) {
    enableTypeScript(absolute);
  }
  let exported: unknown;
  try {
    const loaded = require(absolute) as { default?: unknown };
    exported = loaded !== null && typeof loaded === 'object' && 'default' in loaded ? loaded.default : loaded;
  } catch (err) {
    if ((err as { code?: unknown }).code === 'MODULE_NOT_FOUND' && (err as Error).message.includes(absolute)) {
      throw new CliError(`cannot find ${file}`, 1);
    }
    throw err;
  }
  let device = exported;
  if (typeof exported === 'function') {
    device = isClass(exported) ? new (exported as new () => unknown)() : await (exported as () => unknown)();
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
  const device = await loadDevice(args.file);
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
  const stop = (signal: NodeJS.Signals): void => {
    log(`${signal}: closing`);
    server.close();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
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
