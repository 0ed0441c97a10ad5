/**
 * A gzip-compressed initramfs written directly in the "newc" cpio format the
 * kernel unpacks at boot: no cpio program, no staging directory on disk.
 */
import { gzipSync } from 'node:zlib';

/** One entry of an initramfs: a directory, a regular file, a symbolic link or a character device node. */
export type InitramfsEntry =
  | { kind: 'dir'; path: string; mode?: number }
  | { kind: 'file'; path: string; data: Uint8Array; mode?: number }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'char'; path: string; major: number; minor: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const TRAILER = 'TRAILER!!!';

function hex8(value: number): string {
  return value.toString(16).padStart(8, '0');
}

function padTo4(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4);
}

/** One newc record: 110-byte header, NUL-terminated name, data, each padded to 4 bytes. */
function record(inode: number, name: string, mode: number, data: Uint8Array, rdev = [0, 0]): Buffer[] {
  const nameBytes = Buffer.from(`${name}\0`, 'utf8');
  // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
  const fields = [inode, mode, 0, 0, 1, 0, data.length, 0, 0, rdev[0], rdev[1], nameBytes.length, 0];
  const header = Buffer.from(`070701${fields.map(hex8).join('')}`, 'ascii');
  const headerAndName = header.length + nameBytes.length;
  return [header, nameBytes, padTo4(headerAndName), Buffer.from(data), padTo4(data.length)];
}

/**
 * Packs `entries` (paths relative to the root, without a leading slash) into a
 * gzip-compressed newc archive. Parent directories must be listed before
 * what they contain.
 */
export function buildInitramfs(entries: InitramfsEntry[]): Buffer {
  const parts: Buffer[] = [];
  entries.forEach((entry, i) => {
    const path = entry.path.replace(/^\/+/, '');
    if (path === '') {
      throw new Error('an initramfs entry needs a path below the root');
    }
    if (entry.kind === 'dir') {
      parts.push(...record(i + 1, path, S_IFDIR | (entry.mode ?? 0o755), new Uint8Array()));
    } else if (entry.kind === 'file') {
      parts.push(...record(i + 1, path, S_IFREG | (entry.mode ?? 0o644), entry.data));
    } else if (entry.kind === 'symlink') {
      parts.push(...record(i + 1, path, S_IFLNK | 0o777, Buffer.from(entry.target, 'utf8')));
    } else {
      parts.push(...record(i + 1, path, S_IFCHR | 0o600, new Uint8Array(), [entry.major, entry.minor]));
    }
  });
  parts.push(...record(0, TRAILER, 0, new Uint8Array()));
  return gzipSync(Buffer.concat(parts), { level: 1 });
}
