/**
 * Vendor-specific capabilities with live contents: the library keeps the
 * capability's header (ID, next pointer, length) and sends every other
 * access to its bytes to the server (`VFU_CAP_FLAG_CALLBACK`), which hands
 * it to the device's handler as a config-space range of its own.
 *
 * @packageDocumentation
 */
import { VENDOR_CAPABILITY_HEADER_SIZE } from './capabilities';
import { CapabilityId } from './constants';
import type { LiveVendorCapabilityDescription } from './description';
import { checkFields, checkHandlerSource, checkInteger } from './description-checks';
import { DeviceDescriptionError } from './errors';
import { describeValue } from './handler-results';

const LIVE_VENDOR_FIELDS = ['length', 'handler'] as const;

/** Checks one live vendor capability of `vendorCapabilities`. */
export function checkLiveVendorCapability(field: string, cap: LiveVendorCapabilityDescription): LiveVendorCapabilityDescription {
  if (cap === null || typeof cap !== 'object') {
    throw new DeviceDescriptionError(field, `must be a Uint8Array or a { length, handler } object, not ${describeValue(cap)}`);
  }
  checkFields(field, cap, LIVE_VENDOR_FIELDS);
  const length = checkInteger(`${field}.length`, cap.length, VENDOR_CAPABILITY_HEADER_SIZE + 1, 0xff);
  checkHandlerSource(`${field}.handler`, cap.handler);
  return { length, handler: cap.handler };
}

/** The bytes the library stores for it: the header, contents zero (the handler answers them). */
export function liveVendorCapabilityBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  bytes[0] = CapabilityId.VENDOR;
  bytes[2] = length;
  return bytes;
}
