/*
 * Between dma.c (the mappings a client makes with DMA_MAP / DMA_UNMAP) and
 * sgl.c (the scatter-gather API devices reach them with): what one mapping
 * and one list entry are, and the search over the sorted mappings.
 */
#ifndef VFU_DMA_H
#define VFU_DMA_H

#include <sys/types.h>

#include "private.h"

enum dma_access_mode {
    DMA_ACCESS_MESSAGE,
    DMA_ACCESS_MMAP,
    DMA_ACCESS_FILE_IO,
};

struct dma_region {
    vfu_dma_info_t info; /* what the device's callbacks see */
    uint32_t id;         /* unique per context, unlike the address */
    enum dma_access_mode mode;
    uint64_t file_offset; /* offset of the IOVA start within the file */
    int fd;               /* file I/O mode only, else -1 */
    bool has_file;
    dev_t file_dev; /* identity of the client's file, to tell */
    ino_t file_ino; /* a repeated DMA_MAP from a different one */
    uint8_t *dirty; /* dirty-page bitmap while logging (dirty.c) */
};

/*
 * One entry of a scatter-gather list. dma_sg_t is opaque in the public
 * header, but users size their arrays with dma_sg_size() and upstream's
 * Python tests read these fields, so the 40-byte layout is part of the ABI.
 */
struct dma_sg {
    vfu_dma_addr_t dma_addr; /* IOVA of the start of the mapping */
    struct dma_region *region;
    uint64_t length;
    uint64_t offset;     /* of the segment within the mapping */
    bool writeable;      /* asked for with PROT_WRITE */
    uint32_t mapping_id; /* the region's id: in padding, ABI unchanged */
};

#if UINTPTR_MAX == UINT64_MAX
_Static_assert(sizeof(struct dma_sg) == 40, "dma_sg_t is 40 bytes");
_Static_assert(offsetof(struct dma_sg, region) == 8, "dma_sg_t.region");
_Static_assert(offsetof(struct dma_sg, length) == 16, "dma_sg_t.length");
_Static_assert(offsetof(struct dma_sg, offset) == 24, "dma_sg_t.offset");
_Static_assert(offsetof(struct dma_sg, writeable) == 32, "dma_sg_t.writeable");
_Static_assert(offsetof(struct dma_sg, mapping_id) == 36, "dma_sg_t padding");
#endif

struct vfu_dma {
    size_t max_regions;
    vfu_dma_register_cb_t *register_cb;
    vfu_dma_unregister_cb_t *unregister_cb;
    struct dma_region **regions; /* sorted by IOVA, never overlapping */
    size_t nr_regions;
    size_t capacity;
    uint32_t last_id;
};

static inline uint64_t
region_start(const struct dma_region *r)
{
    return (uint64_t)(uintptr_t)r->info.iova.iov_base;
}

static inline uint64_t
region_end(const struct dma_region *r)
{
    return region_start(r) + r->info.iova.iov_len;
}

/* Index of the first mapping that ends after addr (nr_regions if none). */
size_t dma_first_ending_after(const struct vfu_dma *dma, uint64_t addr);
/* The mapping holding addr, or NULL. */
struct dma_region *dma_find_containing(const struct vfu_dma *dma, uint64_t addr);

#endif /* VFU_DMA_H */
