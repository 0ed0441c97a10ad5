/** Pieces of virtio-blk requests that the client-driven tests build. */

/** A request header: type, reserved, sector (virtio 1.x, 5.2.6). */
export function header(type: number, sector: number): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(type, 0);
  h.writeBigUInt64LE(BigInt(sector), 8);
  return h;
}

/** `length` bytes that differ with `seed` and from sector to sector. */
export function pattern(length: number, seed: number): Buffer {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) {
    bytes[i] = (i * 7 + seed * 31 + (i >> 9)) & 0xff;
  }
  return bytes;
}
