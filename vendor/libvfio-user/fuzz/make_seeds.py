#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz harnesses into fuzz/corpus/<harness>/.

Each seed is a small, valid starting point that reaches one area of the
library; libFuzzer mutates from there. Run it again after changing the input
format of a harness or the layout of fuzz_device.c.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# Options byte (fuzz_device.h).
QUIESCE_ASYNC, QUIESCE_FAILS, RESET_FAILS, ACCESS_FAILS, CONVENTIONAL, SMALL_SNDBUF = \
    1, 2, 4, 8, 16, 32

# Commands (vfio-user.h).
(DMA_MAP, DMA_UNMAP, GET_INFO, GET_REGION_INFO, GET_REGION_IO_FDS, GET_IRQ_INFO,
 SET_IRQS, REGION_READ, REGION_WRITE) = range(2, 11)
DMA_READ, DMA_WRITE = 11, 12
DEVICE_RESET, WRITE_MULTI, DEVICE_FEATURE, MIG_DATA_READ, MIG_DATA_WRITE = 13, 15, 16, 17, 18
REPLY, NO_REPLY = 0x1, 0x10

BAR0, BAR1, BAR2, BAR4, BAR5, ROM, CFG, VGA = 0, 1, 2, 4, 5, 6, 7, 8
# fuzz_device.c: BAR0 registers and where the capabilities land.
BAR0_IRQ, BAR0_DMA_READ, BAR0_DMA_WRITE, BAR0_DMA_ASYNC = 0x0, 0x8, 0x10, 0x18
PM, MSI, MSIX, EXP, VSC, VSC_CB, VSC_RO = 0x40, 0x48, 0x60, 0x6c, 0xa8, 0xb4, 0xc0
DSN, EXT_VSC, EXT_VSC_CB, EXT_VSC_RO = 0x100, 0x10c, 0x120, 0x134
# Mapped by the harness before the input: mmap, and file I/O.
DMA_IOVA, DMA_FILE_IO_IOVA = 0x100000, 0x300000

_msg_id = 0


def msg(cmd, payload=b"", flags=0, size=None):
    global _msg_id
    _msg_id += 1
    if size is None:
        size = 16 + len(payload)
    return struct.pack("<HHIII", _msg_id & 0xFFFF, cmd, size, flags, 0) + payload


def region_read(region, offset, count):
    return msg(REGION_READ, struct.pack("<QII", offset, region, count))


def region_write(region, offset, data, flags=0):
    return msg(REGION_WRITE, struct.pack("<QII", offset, region, len(data)) + data, flags)


def set_irqs(flags, index, start, count, data=b""):
    return msg(SET_IRQS, struct.pack("<IIIII", 20 + len(data), flags, index, start, count) + data)


def dma_map(addr, size, prot=3):
    return msg(DMA_MAP, struct.pack("<IIQQQ", 32, prot, 0, addr, size))


def dma_unmap(addr, size, flags=0):
    return msg(DMA_UNMAP, struct.pack("<IIQQ", 24, flags, addr, size))


IRQ_DATA_NONE, IRQ_DATA_BOOL = 1, 2
IRQ_MASK, IRQ_UNMASK, IRQ_TRIGGER = 8, 16, 32
INTX, MSI_IRQ, MSIX_IRQ = 0, 1, 2

requests = {
    "info": b"".join([msg(GET_INFO, struct.pack("<IIII", 16, 0, 0, 0))] +
                     [msg(GET_REGION_INFO, struct.pack("<IIIIQQ", 64, 0, i, 0, 0, 0))
                      for i in range(9)] +
                     [msg(GET_IRQ_INFO, struct.pack("<IIII", 16, 0, i, 0)) for i in range(5)] +
                     [msg(GET_REGION_IO_FDS, struct.pack("<IIII", 256, 0, BAR0, 0))]),
    "bars": b"".join([
        region_write(BAR0, 0x100, b"\x11\x22\x33\x44"), region_read(BAR0, 0x100, 4),
        region_write(BAR1, 0x10, b"\x55\x66"), region_read(BAR1, 0, 0x100),
        region_write(BAR2, 0x0, struct.pack("<IIII", 0xfee00000, 0, 0x41, 0)),
        region_read(BAR2, 0x0, 64), region_read(BAR2, 0x2000, 8),
        region_write(BAR4, 0x1000, b"\x01" * 8), region_read(BAR4, 0, 0x2000),
        region_read(BAR5, 0, 16), region_read(ROM, 0, 0x800),
        region_write(VGA, 0, b"\xaa" * 4, NO_REPLY), region_read(VGA, 0, 4)]),
    "config": b"".join([
        region_read(CFG, 0, 0x100),
        region_write(CFG, 0x4, struct.pack("<H", 0x0107)),
        region_write(CFG, 0x10, b"\xff" * 24), region_read(CFG, 0x10, 24),
        region_write(CFG, MSI + 2, struct.pack("<H", 0x0021)),
        region_write(CFG, MSIX + 2, struct.pack("<H", 0xc000)),
        region_write(CFG, PM + 4, struct.pack("<H", 0x8103)),
        region_write(CFG, EXP + 8, struct.pack("<H", 0x8000)),
        region_write(CFG, VSC_CB + 3, b"\x12\x34\x56"),
        region_write(CFG, EXT_VSC + 8, b"\x9a" * 12), region_read(CFG, DSN, 0x48)]),
    "irqs": b"".join([
        set_irqs(IRQ_DATA_NONE | IRQ_MASK, MSIX_IRQ, 0, 4),
        region_write(BAR0, BAR0_IRQ, struct.pack("<I", 1)),
        set_irqs(IRQ_DATA_BOOL | IRQ_UNMASK, MSIX_IRQ, 0, 2, b"\x01\x00"),
        region_write(CFG, MSIX + 2, struct.pack("<H", 0x8000)),
        region_write(BAR0, BAR0_IRQ, struct.pack("<I", 2)),
        set_irqs(IRQ_DATA_NONE | IRQ_TRIGGER, INTX, 0, 1),
        set_irqs(IRQ_DATA_BOOL | IRQ_TRIGGER, MSI_IRQ, 0, 4, b"\x01\x01\x00\x01"),
        set_irqs(IRQ_DATA_NONE | IRQ_TRIGGER, MSIX_IRQ, 0, 0)]),
    "dma": b"".join([
        dma_map(0x200000, 0x2000), dma_map(0x202000, 0x1000, 1),
        region_write(BAR0, BAR0_DMA_READ, struct.pack("<Q", DMA_IOVA + 0x10)),
        region_write(BAR0, BAR0_DMA_WRITE, struct.pack("<Q", DMA_IOVA + 0xfff0)),
        region_write(BAR0, BAR0_DMA_READ, struct.pack("<Q", 0x201ff0)),
        region_write(BAR0, BAR0_DMA_WRITE, struct.pack("<Q", DMA_FILE_IO_IOVA + 0x20)),
        region_write(BAR0, BAR0_DMA_READ, struct.pack("<Q", DMA_FILE_IO_IOVA + 0x40)),
        dma_unmap(0x200000, 0x2000), dma_unmap(0, 0, 2)]),
    # Replies to the server's DMA messages, by the ids it will most likely use.
    "dma_messages": b"".join([
        dma_map(0x200000, 0x2000),
        region_write(BAR0, BAR0_DMA_ASYNC, struct.pack("<Q", 0x200010)),
        region_write(BAR0, BAR0_DMA_ASYNC, struct.pack("<Q", 0x201001)),
        struct.pack("<HHIII", 1, DMA_READ, 16 + 16 + 64, REPLY, 0) +
        struct.pack("<QQ", 0x200010, 64) + b"\x5a" * 64,
        struct.pack("<HHIII", 2, DMA_WRITE, 32, REPLY, 0) + struct.pack("<QQ", 0x201000, 64),
        region_write(BAR0, BAR0_DMA_READ, struct.pack("<Q", 0x200100)),
        struct.pack("<HHIII", 3, DMA_READ, 16, REPLY | 0x20, 5)]),
    "multi": msg(WRITE_MULTI, struct.pack("<Q", 3) + b"".join(
        struct.pack("<QII", off, region, count) + data.ljust(8, b"\0")
        for off, region, count, data in [(0x200, BAR0, 8, b"\x01" * 8),
                                          (0x4, CFG, 2, b"\x06\x00"),
                                          (0x20, BAR1, 1, b"\x7f")])),
    "reset": b"".join([
        region_write(CFG, 0x4, struct.pack("<H", 0x0006)), msg(DEVICE_RESET),
        msg(DEVICE_FEATURE, struct.pack("<II", 8, 0x10001)),
        msg(MIG_DATA_READ, struct.pack("<II", 16, 8)),
        msg(MIG_DATA_WRITE, struct.pack("<II", 12, 4) + b"\0" * 4)]),
    "malformed": b"".join([
        msg(GET_INFO, b"", size=8), msg(99, b"\0" * 8), msg(GET_INFO, b"\0" * 16, flags=1),
        msg(REGION_READ, struct.pack("<QII", 0xfff, BAR0, 2)),
        msg(GET_INFO, b"", size=0x200000)]),
}
options = {"info": 0, "bars": SMALL_SNDBUF, "config": 0, "irqs": 0, "dma": QUIESCE_ASYNC,
           "dma_messages": 0,
           "multi": QUIESCE_ASYNC | QUIESCE_FAILS, "reset": RESET_FAILS | ACCESS_FAILS,
           "malformed": CONVENTIONAL}


# fuzz_config.c: kind byte (bit 0 write, bits 1-3 size class, bit 4 64-bit
# offset), offset, data.
def cfg_op(write, size_class, offset, data=b"", wide=False, one_more=False):
    kind = int(write) | size_class << 1 | (0x10 if wide else 0) | (0x80 if one_more else 0)
    return bytes([kind]) + struct.pack("<Q" if wide else "<H", offset) + data


SZ = {1: 0, 2: 1, 4: 2, 8: 3}
config = {
    "header": bytes([0]) + cfg_op(False, 7, 0) + cfg_op(True, SZ[2], 0x4, b"\xff\xff") +
              cfg_op(True, SZ[4], 0x10, b"\xff" * 4) + cfg_op(True, SZ[4], 0x30, b"\xff" * 4) +
              cfg_op(True, SZ[2], 0x6, b"\xff\xff") + cfg_op(False, 4, 0, struct.pack("<H", 64)),
    "msi": bytes([0]) + cfg_op(True, SZ[2], MSI + 2, b"\x71\x00") +
           cfg_op(True, SZ[8], MSI + 4, b"\xff" * 8) + cfg_op(True, SZ[4], MSI + 0x10, b"\xff" * 4) +
           cfg_op(True, SZ[2], MSIX + 2, b"\x00\xc0") + cfg_op(False, 5, MSI, b"\x20"),
    "pm-exp": bytes([RESET_FAILS]) + cfg_op(True, SZ[2], PM + 4, b"\x03\x81") +
              cfg_op(True, SZ[2], EXP + 8, b"\xff\xff") + cfg_op(True, SZ[2], EXP + 10, b"\xff\xff") +
              cfg_op(True, 6, EXP + 0x10, b"\xff\xff\xff"),
    "vendor": bytes([0]) + cfg_op(True, SZ[8], VSC, b"\xff" * 8) +
              cfg_op(True, SZ[8], VSC_CB + 2, b"\x5a" * 8) + cfg_op(True, SZ[4], VSC_RO + 4, b"\xff" * 4) +
              cfg_op(True, 5, 0xc8, b"\x40" + b"\x33" * 0x40),
    "extended": bytes([0]) + cfg_op(True, SZ[8], DSN, b"\xff" * 8) +
                cfg_op(True, 4, EXT_VSC, struct.pack("<H", 0x40) + b"\xee" * 0x40) +
                cfg_op(False, 7, EXT_VSC_RO) + cfg_op(True, SZ[4], 0xffe, b"\1\2\3\4"),
    "bounds": bytes([CONVENTIONAL]) + cfg_op(False, SZ[4], 0xfe) + cfg_op(False, 7, 0x80, one_more=True) +
              cfg_op(True, SZ[8], 0xfffffffffffffffc, b"\0" * 8, wide=True) +
              cfg_op(False, 4, 0, struct.pack("<H", 0)),
}

json = {
    "version": b'{"capabilities":{"max_msg_fds":8,"max_data_xfer_size":1048576,'
               b'"max_dma_maps":16,"pgsizes":4096,"write_multiple":true}}',
    "migration": b'{"capabilities":{"migration":{"pgsize":4096},"twin_socket":'
                 b'{"supported":false}}}',
    "values": b'{"a":[1,-2.5e+3,true,false,null,"x\\u00e9\\n"],"b":{"c":{}},'
              b'"capabilities":{"unknown":[[]],"max_msg_fds":0}}',
    "empty": b"{ }",
}

for harness, seeds in (("requests", requests), ("config", config), ("json", json)):
    folder = os.path.join(HERE, "corpus", harness)
    os.makedirs(folder, exist_ok=True)
    for name, data in seeds.items():
        if harness == "requests":
            data = bytes([options[name]]) + data
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
