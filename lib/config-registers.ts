/**
 * Config-space registers a device answers itself: ranges after the standard
 * header that no capability owns, each with its own handler. The library
 * gives the server every access to config space that neither it (the header)
 * nor a capability owns; this splits such an access over the ranges it
 * touches. Bytes outside every range read as the library stores them (zeros)
 * and ignore writes, as they do without registers.
 *
 * @packageDocumentation
 */
import { checkReadResult, refuseThenable } from './handler-results';
import type { RegionHandler } from './region';

/** A range of config space and the handler that answers it, with offsets relative to its start. */
export interface ConfigRegisterRange {
  readonly offset: number;
  readonly size: number;
  readonly handler: RegionHandler;
  /**
   * Leading bytes that read as the library stores them and ignore writes:
   * a live capability's header, whose next pointer the library links.
   */
  readonly header?: number;
}

/** The server's handler of region 7 (config space) when the device has config registers. */
export class ConfigRegisters implements RegionHandler {
  /**
   * @param ranges - the device's ranges, in offset order, not overlapping
   * @param stored - the library's config space, for bytes outside every range
   */
  constructor(
    private readonly ranges: readonly ConfigRegisterRange[],
    private readonly stored: () => Buffer,
  ) {}

  read(offset: number, data: Buffer): void {
    this.split(offset, data, (range, at, piece) => {
      checkReadResult(range.handler.read(at, piece), piece, `config registers at 0x${range.offset.toString(16)} read handler`);
    }, (at, piece) => {
      this.stored().copy(piece, 0, at, at + piece.length);
    });
  }

  write(offset: number, data: Buffer): void {
    this.split(offset, data, (range, at, piece) => {
      refuseThenable(range.handler.write(at, piece), `config registers at 0x${range.offset.toString(16)} write handler`);
    }, () => {});
  }

  reset(): void {
    for (const range of this.ranges) {
      refuseThenable(range.handler.reset?.(), `config registers at 0x${range.offset.toString(16)} reset`);
    }
  }

  /** Calls `inRange` for each piece of the access inside a range, `outside` for the rest. */
  private split(
    offset: number,
    data: Buffer,
    inRange: (range: ConfigRegisterRange, at: number, piece: Buffer) => void,
    outside: (at: number, piece: Buffer) => void,
  ): void {
    const end = offset + data.length;
    let at = offset;
    for (const range of this.ranges) {
      const rangeEnd = range.offset + range.size;
      if (rangeEnd <= at) {
        continue;
      }
      if (range.offset >= end) {
        break;
      }
      const handled = range.offset + (range.header ?? 0);
      if (handled > at) {
        const stop = Math.min(end, handled);
        outside(at, data.subarray(at - offset, stop - offset));
        at = stop;
        if (at === end) {
          break;
        }
      }
      const stop = Math.min(end, rangeEnd);
      inRange(range, at - range.offset, data.subarray(at - offset, stop - offset));
      at = stop;
    }
    if (at < end) {
      outside(at, data.subarray(at - offset));
    }
  }
}
