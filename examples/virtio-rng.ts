/**
 * virtio-rng (virtio entropy device, spec 5.4): one queue; the driver
 * posts device-writable buffers and the device fills them with random
 * bytes from `crypto.randomFillSync`. Linux's `virtio_rng` binds to it and
 * makes it a hardware RNG (`/dev/hwrng`).
 *
 * Serve it with `npx vfio-user serve examples/virtio-rng.ts --socket /tmp/rng.sock`.
 */
import { randomFillSync } from 'node:crypto';

import { VirtioDevice, VirtioDeviceType, type Virtqueue, type VirtqueueRequest } from 'vfio-user/virtio';

/** The entropy device. */
export class VirtioRng extends VirtioDevice {
  /** Random bytes handed to the driver since the process started. */
  bytesServed = 0;

  constructor() {
    super({ type: VirtioDeviceType.ENTROPY, queues: 1, queueSize: 64 });
  }

  override async onRequest(queue: Virtqueue, request: VirtqueueRequest): Promise<void> {
    void queue;
    const views = request.views('writable');
    if (views !== undefined) {
      // Shared guest memory: fill the driver's buffers in place.
      views.forEach((view) => randomFillSync(view));
    } else {
      await request.write(randomFillSync(Buffer.allocUnsafe(request.writableLength)));
    }
    this.bytesServed += request.writableLength;
    request.complete(request.writableLength);
  }
}

export default function create(): VirtioRng {
  return new VirtioRng();
}
