/**
 * The QEMU test harness: start QEMU under qtest against any vfio-user
 * device, act as the guest's CPU and firmware, and clean up afterwards.
 * Nothing here depends on a test framework; test/qemu/support.ts adapts it
 * to jest.
 */
export * from './device';
export * from './find-qemu';
export * from './interrupts';
export * from './pci';
export * from './peek';
export * from './qemu';
export * from './qtest';
export * from './resources';
export * from './session';
