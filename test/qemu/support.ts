/**
 * Jest glue for the QEMU harness: skip (loudly) when no QEMU with
 * vfio-user-pci exists, and clean up after every test.
 *
 * With VFU_REQUIRE_QEMU=1 (CI sets it) a missing QEMU is a failure, so a
 * machine that lost its QEMU cannot pass by skipping.
 */
import { cleanupAll, findQemu } from './harness';

export function describeWithQemu(name: string, body: () => void): void {
  const found = findQemu();
  if (!found.ok) {
    if (process.env.VFU_REQUIRE_QEMU === '1') {
      describe(name, () => {
        test('a QEMU with vfio-user-pci is available (VFU_REQUIRE_QEMU=1)', () => {
          throw new Error(found.reason);
        });
      });
      return;
    }
    console.warn(`SKIPPED ${name}: ${found.reason}`);
    describe.skip(`${name} [skipped: ${found.reason}]`, body);
    return;
  }
  describe(name, () => {
    afterEach(cleanupAll);
    afterAll(cleanupAll);
    body();
  });
}
