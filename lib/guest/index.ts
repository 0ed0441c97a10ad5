/**
 * The guest harness (`vfio-user/guest`): boot a real Linux guest under QEMU
 * with your devices attached and run a script in it, from a test.
 *
 * @packageDocumentation
 */
export { Guest, GuestError, runGuest, type GuestDevice, type GuestOptions, type GuestResult } from './guest';
export { type GuestFile, type GuestImageOptions } from './guest-image';
export { compileStaticProgram, findGuestKit, type GuestKit, type GuestKitOptions } from './guest-kit';
export { buildInitramfs, type InitramfsEntry } from './initramfs';
export { QmpConnection, QmpError, type QmpEvent, type QmpPciDevice } from './qmp';
