/**
 * The compiled addon (a local build in `build/`, else the prebuilt binary in
 * `prebuilds/`) and the types of everything it exports. Internal to the
 * package: the device API, the server and the client are built on it.
 *
 * @packageDocumentation
 */
import * as fs from 'node:fs';
import * as path from 'node:path';


/**
 * Handlers a {@link DeviceContext} calls. Every call is synchronous, made
 * while the library serves a request, through `napi_make_callback` with one
 * async context per device: queued `process.nextTick` and promise callbacks
 * run after each call. The handler functions are looked up once, when the
 * context is constructed, and called with the handlers object as `this`.
 *
 * An exception thrown by a handler never reaches the C library: the request
 * fails with the exception's `errno` when that is a positive integer, else
 * `EIO` (the client receives that errno), and the exception is given to
 * {@link DeviceHandlers.error} once the library has returned.
 */
export interface DeviceHandlers {
  /**
   * A client's access to a region set up with
   * {@link DeviceContext.setupRegion}. `data` is exactly the access's size:
   * for up to 64 bytes it is `ioViews[count]` (a write's bytes were copied in
   * before the call; a read's are copied out after it, and start as zeros);
   * for larger accesses a Buffer over the message, detached once the handler
   * returns, so it must not be kept. A read fills `data`.
   */
  regionAccess?(region: number, offset: number, data: Buffer, isWrite: boolean): void;
  /** The device is reset: 0 by the client, 1 the client left (or close()), 2 a function-level reset. */
  reset?(type: number): void;
  /** The client masked (`masked` true) or unmasked vectors `[start, start + count)` of IRQ type `type`. */
  irqState?(type: number, start: number, count: number, masked: boolean): void;
  /**
   * The client mapped guest memory `[iova, iova + length)` with `prot`
   * (PROT_READ 1 | PROT_WRITE 2). `memory` is that memory when the client
   * passed an fd; it is detached when the mapping goes away.
   */
  dmaRegister?(iova: number, length: number, prot: number, memory: ArrayBuffer | undefined): void;
  /** The mapping at `iova` goes away; its `memory` is detached after this returns. */
  dmaUnregister?(iova: number, length: number): void;
  /** A client connected and negotiated. */
  connect?(): void;
  /** The client is gone (disconnected, or close() while it was connected). */
  disconnect?(): void;
  /** A message of the C library, with its syslog level (LOG_ERR 3 ... LOG_DEBUG 7). */
  log?(level: number, message: string): void;
  /**
   * An exception thrown by a handler, or a failure to connect a client or to serve.
   * Called after the library returns, never with an exception pending. With
   * no error handler (or if it throws) the error becomes an uncaught
   * exception, or is thrown by the method that was running.
   */
  error?(err: Error): void;
  /**
   * Optional: the device must stop DMA and interrupts now (before DMA map or
   * unmap, a reset). Synchronous; throwing fails the request that needed it.
   */
  quiesce?(): void;
  /**
   * Migration (after {@link DeviceContext.setupMigration}): one step of the
   * state machine, a `vfu_migr_state_t` (0 STOP, 1 RUNNING, 2 STOP_AND_COPY,
   * 3 PRE_COPY, 4 RESUME). Throwing refuses it.
   */
  migrationTransition?(state: number): void;
  /**
   * Migration: fill `into` (a view of the library's reply buffer, detached
   * after the call) with the next stream bytes; returns how many, 0 at the
   * end of the data.
   */
  migrationRead?(into: Buffer): number;
  /** Migration: the next stream bytes (a view of the request, detached after the call). */
  migrationWrite?(data: Buffer): void;
  /**
   * A regionAccess call took `ms` milliseconds, at least what
   * {@link DeviceContext.setSlowAccessMs} set (the addon times it: a clock
   * read in JS would cost more than the rest of the dispatch).
   */
  slowAccess?(region: number, isWrite: boolean, ms: number): void;
}

/** One emulated device on one socket: a libvfio-user context. */
export interface DeviceContext {
  /** `vfu_pci_init`: allocates the config space (type: 0 conventional, 1/2 PCI-X, 3 PCI Express). */
  pciInit(type: number): void;
  /** Vendor, device, subsystem vendor and subsystem IDs. */
  setIds(vendor: number, device: number, subVendor: number, subDevice: number): void;
  /** Class code: base class, sub-class, programming interface. */
  setClass(base: number, sub: number, progIf: number): void;
  /** Revision ID (config byte 0x08). */
  setRevision(rev: number): void;
  /**
   * Defines region `index` (0-5 BARs, 6 ROM, 7 config, 8 VGA) with
   * VFU_REGION_FLAG_* flags; its accesses go to handlers.regionAccess. With
   * `fd`, `mmapAreas` (`[offset, size]` pairs within the region, all of it
   * if omitted) may be mapped by the client directly.
   */
  setupRegion(index: number, size: number, flags: number, fd?: number, mmapAreas?: Array<[number, number]>): void;
  /** Adds a capability (its bytes, header first) at `pos` (0: next free place); returns its offset. */
  addCapability(pos: number, flags: number, bytes: Uint8Array): number;
  /** Number of vectors of IRQ type `type` (0 INTx, 1 MSI, 2 MSI-X, 3 ERR, 4 REQ). */
  setupIrqs(type: number, count: number): void;
  /** Accepts client DMA mappings, at most `maxRegions` of them. */
  setupDma(maxRegions: number): void;
  /**
   * `vfu_create_ioeventfd`: offers eventfd `fd` (kept open by the caller
   * while the context lives) for writes of `size` bytes at `offset` of
   * region `region`, which the client answers with GET_REGION_IO_FDS.
   * `flags` are KVM_IOEVENTFD_FLAG_* (1 DATAMATCH, 2 PIO).
   */
  createIoeventfd(region: number, fd: number, offset: number, size: number, flags: number, datamatch: bigint): void;
  /** Which library messages reach handlers.log (syslog level, default 6 LOG_INFO). */
  setLogLevel(level: number): void;
  /** Region accesses whose handler runs `ms` or longer go to handlers.slowAccess (0: none, the default). */
  setSlowAccessMs(ms: number): void;
  /** Finalises the description; required before start(). */
  realize(): void;
  /** The config space itself (no copy); detached by close(). */
  configSpace(): ArrayBuffer;
  /** Starts serving on the event loop; keeps the process alive until close(). */
  start(): void;
  /**
   * Signals interrupt vector `vector` if IRQ type `type` is the one config
   * space enables (true), else does nothing (false); throws ENOENT (no
   * eventfd) or EINVAL (out of range). A system library ignores `type` and
   * signals the type the client installed last.
   */
  irqTrigger(vector: number, type: number): boolean;
  /** The IRQ type the function signals now (extensions only; ENOTSUP otherwise). */
  interruptMode(): number;
  /**
   * A vector's state: bit 0 masked (by SET_IRQS or the function's own bits),
   * bit 1 pending (extensions only; ENOTSUP otherwise).
   */
  irqVectorState(type: number, vector: number): number;
  /** Stops serving and destroys the context (handlers.reset(1), socket removed). Idempotent; from a handler it takes effect when the library returns. */
  close(): void;
  /** A client is connected. */
  readonly connected: boolean;
  /** Registers the migration callbacks (needs the three migration handlers). */
  setupMigration(): void;
  /**
   * The library's dirty-page logging granule (8 bytes, host order; 0 while
   * the client logs no dirty pages), over the library's own memory and
   * detached at close; undefined without the extensions.
   */
  dirtyGranule(): ArrayBuffer | undefined;
  /** Marks client memory the device wrote as dirty (`vfu_addr_to_sgl` + `vfu_sgl_mark_dirty`). */
  markDirty(iova: number, length: number): void;
  /** A copy of the emulated MSI-X table (extensions only). */
  msixTable(): Buffer;
  /** Puts back the MSI-X table and pending bits (one byte per vector), then delivers what nothing masks (extensions only). */
  restoreMsix(table: Uint8Array, pending: Uint8Array): void;
  /**
   * Copies client memory at `iova` into `data` (DMA_READ) or `data` into it
   * (DMA_WRITE), through the library's scatter-gather API. With the
   * extensions the messages are sent at once and `done` is called
   * exactly once, from inside a later run of the library on this thread:
   * with 0 when the client answered them all, its errno for an error reply,
   * or ENOTCONN when it went away, was reset or the context closed (`done`
   * is not called while the environment is being torn down). `data` is
   * kept alive and must not be used until then. With a system library the
   * copy blocks until the client answered and `done` is called before this
   * returns: a client on this same thread can never answer, another process
   * (QEMU) can. Throws (nothing started) for bad arguments or when the
   * library refuses at once.
   */
  dmaTransfer(iova: number, data: Uint8Array, isWrite: boolean, done: (errno: number) => void): void;
}

/** The DeviceContext class. */
export interface DeviceContextConstructor {
  /**
   * Creates the context and its listening socket (a stale socket is
   * replaced). `ioViews` are 65 Buffers over one 64-byte ArrayBuffer,
   * `ioViews[n]` of length n, all starting at its first byte.
   */
  new (socketPath: string, handlers: DeviceHandlers, ioViews: Buffer[]): DeviceContext;
}

/** A uv_poll_t on any fd, on the JS thread. */
export interface FdWatcher {
  /** Watches for readability and/or writability (neither: stop); a watching watcher keeps the process alive. */
  start(readable: boolean, writable: boolean): void;
  /** Stops watching; start() may be called again. */
  stop(): void;
  /** Stops for good (the fd is not closed). Idempotent. */
  close(): void;
  /** Keeps the event loop alive while watching (the default). */
  ref(): void;
  /** Does not keep the event loop alive. */
  unref(): void;
}

/** The FdWatcher class. */
export interface FdWatcherConstructor {
  /** `onEvent` gets `error` 0, or a positive errno after which watching has stopped. */
  new (fd: number, onEvent: (readable: boolean, writable: boolean, error: number) => void): FdWatcher;
}

/** What recvmsg() received. */
export interface RecvResult {
  /** Bytes received; 0 means the peer closed the connection. */
  bytes: number;
  /** File descriptors received (close-on-exec). */
  fds: number[];
}

/** System calls the client and the tests need. Errors are thrown as {@link NativeError}. */
export interface OsHelpers {
  /**
   * An anonymous memory file of `size` bytes (memfd_create, close-on-exec);
   * `sealed`: its size is sealed, nobody it is passed to can shrink or grow it.
   */
  memfd(name: string, size: number, sealed?: boolean): number;
  /** The host's page size in bytes (sysconf(_SC_PAGESIZE)). */
  readonly pageSize: number;
  /** An eventfd (close-on-exec). */
  eventfd(initial?: number, nonblocking?: boolean): number;
  /** Reads an eventfd's counter; null if it is zero on a non-blocking eventfd. */
  eventfdRead(fd: number): bigint | null;
  /** Adds to an eventfd's counter. */
  eventfdWrite(fd: number, value: number | bigint): void;
  /** close(2). */
  close(fd: number): void;
  /** Maps `length` bytes of `fd` at `offset` (MAP_SHARED) as an ArrayBuffer; unmapped by munmap() or when collected. */
  mmap(fd: number, offset: number, length: number, writable: boolean): ArrayBuffer;
  /** Unmaps an ArrayBuffer returned by mmap() and detaches it. */
  munmap(buffer: ArrayBuffer): void;
  /** Connects to a UNIX stream socket; the fd returned is non-blocking. */
  connect(path: string): number;
  /** Sends chunks (and fds, SCM_RIGHTS) in one sendmsg; returns the bytes sent, which may be fewer. Throws EAGAIN when nothing could be sent. */
  sendmsg(fd: number, chunks: Uint8Array[], fds: number[]): number;
  /** Receives into `into` from `offset`; null on EAGAIN. */
  recvmsg(fd: number, into: Uint8Array, offset: number): RecvResult | null;
  /** The FdWatcher class. */
  FdWatcher: FdWatcherConstructor;
}

/** An error thrown by the addon: a failed system or library call. */
export interface NativeError extends Error {
  /** The errno's name, e.g. `'EADDRINUSE'`. */
  code: string;
  /** The positive errno value. */
  errno: number;
  /** The function that failed, e.g. `'vfu_create_ctx'`. */
  syscall: string;
}

/** Everything the addon exports. */
export interface NativeAddon {
  DeviceContext: DeviceContextConstructor;
  os: OsHelpers;
  /**
   * Copies `length` bytes from `source[sourceOffset..]` to
   * `target[targetOffset..]` without allocating (a JS copy of part of a
   * typed array needs a view object). Throws RangeError for a range outside
   * either array (a detached one has length 0).
   */
  copyBytes(this: void, target: Uint8Array, targetOffset: number, source: Uint8Array, sourceOffset: number, length: number): void;
  /** Built with our library's extensions (libvfio-user-ext.h); false with a system library. */
  libraryExtensions: boolean;
}

/**
 * The package's root (where binding.gyp is), whether this file runs from
 * `lib/` (ts-jest) or from `dist/` or `dist/lib/` (compiled).
 */
function packageRoot(): string {
  const roots = [path.join(__dirname, '..'), path.join(__dirname, '..', '..')];
  return roots.find((root) => fs.existsSync(path.join(root, 'binding.gyp'))) ?? roots[0];
}

/**
 * Where the addon is looked for: `$VFIO_USER_ADDON` if set, then what
 * node-gyp-build finds in the package: a local build (`build/Release`,
 * `build/Debug`) before the prebuilt binary for this platform
 * (`prebuilds/linux-x64/`).
 */
export function addonCandidates(): string[] {
  const candidates: string[] = [];
  const override = process.env.VFIO_USER_ADDON;
  if (override !== undefined && override !== '') {
    candidates.push(path.resolve(override));
  }
  try {
    // Required here, not at the top: with $VFIO_USER_ADDON this file may run
    // from a copy outside the package. It ships no types; resolve() is used.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const nodeGypBuild = require('node-gyp-build') as { resolve(root: string): string };
    candidates.push(nodeGypBuild.resolve(packageRoot()));
  } catch {
    // Neither built nor prebuilt: loadAddon() says what to do.
  }
  return candidates;
}

function loadAddon(): NativeAddon {
  const found = addonCandidates().find((file) => fs.existsSync(file));
  if (found === undefined) {
    throw new Error(
      `vfio-user: no native addon for ${process.platform}-${process.arch} in ${packageRoot()} ` +
        '(no prebuilt binary, no build/): run "npx node-gyp rebuild" there',
    );
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(found) as NativeAddon;
}

/** The loaded addon. */
export const native: NativeAddon = loadAddon();

/** The DeviceContext class of the addon. */
export const DeviceContext: DeviceContextConstructor = native.DeviceContext;

/** The addon's system-call helpers. */
export const os: OsHelpers = native.os;

/** The addon's allocation-free copy between typed arrays. */
export const copyBytes: NativeAddon['copyBytes'] = native.copyBytes;
