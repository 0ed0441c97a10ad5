/**
 * The example of docs/guests.md, as a user's test would be: their own
 * device, a static program of theirs, and the package's public imports.
 * Keep the two in step.
 */
import { PciDevice, RegisterMap } from 'vfio-user';
import { compileStaticProgram, runGuest } from 'vfio-user/guest';

jest.setTimeout(300000);

class Counter extends PciDevice {
  regs = new RegisterMap({ count: { offset: 0, width: 4, rw: true } });
  constructor() {
    super({ vendorId: 0x1b36, deviceId: 0x1234, classCode: 0xff0000,
            bars: [{ index: 0, size: 0x1000, handler: () => this.regs }] });
  }
}

test('Linux sees the counter and writes it', async () => {
  const counter = new Counter();
  const poke = await compileStaticProgram(`
    #include <fcntl.h>
    #include <stdint.h>
    #include <sys/mman.h>
    int main(int c, char **v) {
      int fd = open(v[1], O_RDWR | O_SYNC);
      volatile uint32_t *bar = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      *bar = 42;
      return *bar == 42 ? 0 : 1;
    }`);
  const result = await runGuest({
    devices: [{ device: counter }],
    files: { '/bin/poke': { data: poke, mode: 0o755 } },
    script: `
      for d in /sys/bus/pci/devices/*; do
        [ "$(cat $d/device)" = 0x1234 ] && dev=$d
      done
      cat $dev/vendor
      echo 1 > $dev/enable
      poke $dev/resource0`,
  });
  expect(result.exitCode).toBe(0);
  expect(result.output).toBe('0x1b36\n');
  expect(counter.regs.get('count')).toBe(42);
});
