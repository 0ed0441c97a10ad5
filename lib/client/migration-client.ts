/**
 * The migration layer of {@link VfioUserClient}: the MIGRATION and
 * MIG_DEVICE_STATE features, migration data, and dirty-page logging.
 *
 * @packageDocumentation
 */
import { MigrationTransitionError, ProtocolError, VfioUserError } from '../errors';
import type { MigrationState } from '../migration';
import { checkRange } from './arguments';
import { DmaClient } from './dma-client';
import {
  bitmapSize,
  decodeDataRead,
  decodeLoggingReport,
  decodeMigrationFlags,
  DeviceFeature,
  encodeDataRead,
  encodeDataWrite,
  encodeDeviceState,
  encodeFeature,
  encodeLoggingReport,
  encodeLoggingStart,
  FEATURE_HEADER_SIZE,
  FeatureFlag,
  MigrationFlag,
  stateOfWire,
  wireState,
  type DirtyRange,
  type DirtyReport,
} from './migration-protocol';
import { Command, readU64 } from './protocol';

/** What the MIGRATION feature says the device supports. */
export interface MigrationFeatures {
  /** Raw flags (VFIO_MIGRATION_*). */
  readonly flags: number;
  /** STOP_COPY: the device migrates. */
  readonly stopCopy: boolean;
  /** PRE_COPY: data can be read while the device runs. */
  readonly preCopy: boolean;
}

/** Migration and dirty-page logging requests of a {@link VfioUserClient}. */
export abstract class MigrationClient extends DmaClient {
  /** The state last set or read; a reset forgets it. */
  protected knownState: MigrationState | undefined;

  /**
   * DEVICE_FEATURE GET of MIGRATION: whether and how the device migrates.
   *
   * @throws {@link VfioUserError} (EINVAL from our server) when the device does not migrate
   */
  async getMigrationFeatures(): Promise<MigrationFeatures> {
    const { payload } = await this.request(
      Command.DEVICE_FEATURE,
      encodeFeature(DeviceFeature.MIGRATION, FeatureFlag.GET, new Uint8Array(0), FEATURE_HEADER_SIZE + 8),
    );
    const flags = decodeMigrationFlags(payload);
    return { flags, stopCopy: (flags & MigrationFlag.STOP_COPY) !== 0, preCopy: (flags & MigrationFlag.PRE_COPY) !== 0 };
  }

  /** DEVICE_FEATURE GET of MIG_DEVICE_STATE. */
  async getMigrationState(): Promise<MigrationState> {
    const { payload } = await this.request(
      Command.DEVICE_FEATURE,
      encodeFeature(DeviceFeature.MIG_DEVICE_STATE, FeatureFlag.GET, new Uint8Array(0), FEATURE_HEADER_SIZE + 8),
    );
    this.expectLength('MIG_DEVICE_STATE', payload, FEATURE_HEADER_SIZE + 8);
    this.knownState = stateOfWire(payload.readUInt32LE(FEATURE_HEADER_SIZE));
    return this.knownState;
  }

  /**
   * DEVICE_FEATURE SET of MIG_DEVICE_STATE: moves the device to `state`;
   * the server takes the shortest path of allowed arcs.
   *
   * @throws {@link MigrationTransitionError} when the server refuses (with its errno)
   */
  async setMigrationState(state: MigrationState): Promise<void> {
    const data = encodeDeviceState(wireState(state));
    try {
      await this.request(Command.DEVICE_FEATURE, encodeFeature(DeviceFeature.MIG_DEVICE_STATE, FeatureFlag.SET, data));
    } catch (err) {
      if (!(err instanceof VfioUserError) || err instanceof ProtocolError || err.syscall !== 'DEVICE_FEATURE') {
        throw err;
      }
      const from = await this.getMigrationState().catch(() => undefined);
      throw new MigrationTransitionError(err.errno, from, state);
    }
    this.knownState = state;
  }

  /** The migration state the client last set or read (undefined before any, or after a reset). */
  get migrationState(): MigrationState | undefined {
    return this.knownState;
  }

  /** Most bytes one migration data message may carry both ways. */
  get migrationChunkSize(): number {
    return Math.min(this.serverCapabilities.maxDataXferSize, this.maxDataXferSize);
  }

  /**
   * One MIG_DATA_READ of at most `size` bytes (default
   * {@link MigrationClient.migrationChunkSize}); an empty Buffer means there is no more data now.
   */
  async readMigrationData(size = this.migrationChunkSize): Promise<Buffer> {
    checkRange('MIG_DATA_READ', 'size', size, 0xfffffff7);
    const { payload } = await this.request(Command.MIG_DATA_READ, encodeDataRead(size));
    return decodeDataRead(payload, size);
  }

  /**
   * The migration data of the current saving state (PRE_COPY or
   * STOP_COPY), read with MIG_DATA_READ until the server gives no more.
   */
  async *migrationData(size = this.migrationChunkSize): AsyncGenerator<Buffer> {
    for (;;) {
      const chunk = await this.readMigrationData(size);
      if (chunk.length === 0) {
        return;
      }
      yield chunk;
    }
  }

  /** MIG_DATA_WRITE of `data`, in messages of at most {@link MigrationClient.migrationChunkSize} bytes. */
  async writeMigrationData(data: Uint8Array): Promise<void> {
    const chunk = this.migrationChunkSize;
    for (let at = 0; at < data.length; at += chunk) {
      await this.request(Command.MIG_DATA_WRITE, encodeDataWrite(data.subarray(at, Math.min(data.length, at + chunk))));
    }
  }

  /**
   * DMA_LOGGING_START: the device logs its writes to client memory, in
   * `pageSize` pages (default 4096), over `ranges` (default: everything
   * mapped). Resolves with the page size the server chose.
   */
  async startDirtyLogging(options: { pageSize?: number; ranges?: readonly DirtyRange[] } = {}): Promise<number> {
    const pageSize = options.pageSize ?? 4096;
    const data = encodeLoggingStart(pageSize, options.ranges ?? []);
    const { payload } = await this.request(
      Command.DEVICE_FEATURE,
      encodeFeature(DeviceFeature.DMA_LOGGING_START, FeatureFlag.SET, data),
    );
    return payload.length >= FEATURE_HEADER_SIZE + 8 ? readU64(payload, FEATURE_HEADER_SIZE, 'DMA_LOGGING_START') : pageSize;
  }

  /** DMA_LOGGING_STOP. */
  async stopDirtyLogging(): Promise<void> {
    await this.request(Command.DEVICE_FEATURE, encodeFeature(DeviceFeature.DMA_LOGGING_STOP, FeatureFlag.SET));
  }

  /**
   * DMA_LOGGING_REPORT: the pages of `[iova, iova + length)` the device
   * wrote since logging started or since the last report (a report clears
   * them). Our server reports one whole mapping at a time.
   */
  async dirtyPages(iova: number, length: number, pageSize = 4096): Promise<DirtyReport> {
    const argsz = FEATURE_HEADER_SIZE + 24 + bitmapSize(length, pageSize);
    const { payload } = await this.request(
      Command.DEVICE_FEATURE,
      encodeFeature(DeviceFeature.DMA_LOGGING_REPORT, FeatureFlag.GET, encodeLoggingReport(iova, length, pageSize), argsz),
    );
    return decodeLoggingReport(payload, iova, length, pageSize);
  }
}
