/*
 * ABI check for the public libvfio-user headers.
 *
 * Verifies sizes, field offsets, alignments, bitfield positions, enum and
 * macro values, and the function signatures declared by <libvfio-user.h>,
 * against the figures expected on x86-64 / LP64 / GCC / glibc.
 *
 * Only the headers are used: no library function is called or referenced,
 * so this program links without the library. Prints one line per failed
 * check and a final "N passed, M failed" summary; exits 1 on any failure.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "libvfio-user.h"

static unsigned int n_passed;
static unsigned int n_failed;

static void
check(int line, const char *what, unsigned long long got, unsigned long long want)
{
    if (got == want) {
        n_passed++;
    } else {
        n_failed++;
        printf("FAIL line %d: %s: got %llu (0x%llx), expected %llu (0x%llx)\n", line, what, got,
               got, want, want);
    }
}

#define EQ(expr, want) \
    check(__LINE__, #expr, (unsigned long long)(expr), (unsigned long long)(want))
#define SIZE(T, n) EQ(sizeof(T), (n))
#define ALIGN(T, n) EQ(__alignof__(T), (n))
#define OFF(T, m, n) EQ(offsetof(T, m), (n))

/* Non-constant all-ones value, so bitfield stores do not warn. */
static volatile unsigned long long all_ones = ~0ULL;

/*
 * Sets one bitfield of a zeroed object to all ones and checks which bits of
 * the object's first (up to) 8 bytes became set. Little-endian host assumed.
 */
#define BF(T, field, mask)                                                     \
    do {                                                                       \
        T bf_obj_;                                                             \
        uint64_t bf_raw_ = 0;                                                  \
        memset(&bf_obj_, 0, sizeof(bf_obj_));                                  \
        bf_obj_.field = all_ones;                                              \
        memcpy(&bf_raw_, &bf_obj_, sizeof(bf_obj_) < 8 ? sizeof(bf_obj_) : 8); \
        check(__LINE__, #T "." #field " bit mask", bf_raw_, (mask));           \
    } while (0)

/* The same, reading back through the union's own `raw` member. */
#define BF_RAW(T, field, mask)                                          \
    do {                                                                \
        T bf_obj_;                                                      \
        memset(&bf_obj_, 0, sizeof(bf_obj_));                           \
        bf_obj_.field = all_ones;                                       \
        check(__LINE__, #T "." #field " via raw", bf_obj_.raw, (mask)); \
    } while (0)

/* Type compatibility, evaluated at compile time without referencing fn. */
#define SIG(fn, type) \
    check(__LINE__, "signature of " #fn, __builtin_types_compatible_p(__typeof__(fn), type), 1)
#define TYPE_IS(T, type) check(__LINE__, "type " #T, __builtin_types_compatible_p(T, type), 1)

/* Object-like macro detection: a defined macro stringifies differently. */
#define STR_(x) #x
#define XSTR_(x) STR_(x)
#define IS_MACRO(name) check(__LINE__, #name " is a macro", strcmp(#name, XSTR_(name)) != 0, 1)
#define NOT_MACRO(name) check(__LINE__, #name " is not a macro", strcmp(#name, XSTR_(name)) != 0, 0)

static void
check_headers_and_deps(void)
{
    /* Include guards. */
    IS_MACRO(LIB_VFIO_USER_H);
    IS_MACRO(VFIO_USER_H);
    IS_MACRO(LIBVFIO_USER_PCI_DEFS_H);
    IS_MACRO(LIB_VFIO_USER_PCI_CAPS_COMMON_H);
    IS_MACRO(LIB_VFIO_USER_PCI_CAPS_DSN_H);
    IS_MACRO(LIB_VFIO_USER_PCI_CAPS_MSI_H);
    IS_MACRO(LIB_VFIO_USER_PCI_CAPS_MSIX_H);
    IS_MACRO(LIB_VFIO_USER_PCI_CAPS_PM_H);
    IS_MACRO(LIB_VFIO_USER_PCI_CAPS_PX_H);

    /* Things users get through <libvfio-user.h>. */
    SIZE(loff_t, 8);
    TYPE_IS(loff_t, int64_t);
    SIZE(ssize_t, 8);
    SIZE(bool, 1);
    SIZE(struct iovec, 16);
    OFF(struct iovec, iov_base, 0);
    OFF(struct iovec, iov_len, 8);
    EQ(LOG_EMERG, 0);
    EQ(LOG_ERR, 3);
    EQ(LOG_DEBUG, 7);
#ifdef SLIST_HEAD
    EQ(1, 1);
#else
    EQ("sys/queue.h not included", 0);
#endif
}

static void
check_types(void)
{
    SIZE(vfu_dma_addr_t, 8);
    TYPE_IS(vfu_dma_addr_t, void *);
    TYPE_IS(dma_sg_t, struct dma_sg);
    TYPE_IS(vfu_ctx_t, struct vfu_ctx);

    /* Enumerations: all int-sized. */
    SIZE(vfu_trans_t, 4);
    SIZE(vfu_dev_type_t, 4);
    SIZE(vfu_reset_type_t, 4);
    TYPE_IS(vfu_reset_type_t, enum vfu_reset_type);
    SIZE(enum vfu_dev_irq_type, 4);
    SIZE(vfu_migr_state_t, 4);
    SIZE(vfu_pci_type_t, 4);

    EQ(VFU_TRANS_SOCK, 0);
    EQ(VFU_TRANS_PIPE, 1);
    EQ(VFU_TRANS_MAX, 2);
    EQ(VFU_DEV_TYPE_PCI, 0);
    EQ(VFU_RESET_DEVICE, 0);
    EQ(VFU_RESET_LOST_CONN, 1);
    EQ(VFU_RESET_PCI_FLR, 2);
    EQ(VFU_DEV_INTX_IRQ, 0);
    EQ(VFU_DEV_MSI_IRQ, 1);
    EQ(VFU_DEV_MSIX_IRQ, 2);
    EQ(VFU_DEV_ERR_IRQ, 3);
    EQ(VFU_DEV_REQ_IRQ, 4);
    EQ(VFU_DEV_NUM_IRQS, 5);
    EQ(VFU_DEV_INTX_IRQ, VFIO_PCI_INTX_IRQ_INDEX);
    EQ(VFU_DEV_MSI_IRQ, VFIO_PCI_MSI_IRQ_INDEX);
    EQ(VFU_DEV_MSIX_IRQ, VFIO_PCI_MSIX_IRQ_INDEX);
    EQ(VFU_DEV_ERR_IRQ, VFIO_PCI_ERR_IRQ_INDEX);
    EQ(VFU_DEV_REQ_IRQ, VFIO_PCI_REQ_IRQ_INDEX);
    EQ(VFU_MIGR_STATE_STOP, 0);
    EQ(VFU_MIGR_STATE_RUNNING, 1);
    EQ(VFU_MIGR_STATE_STOP_AND_COPY, 2);
    EQ(VFU_MIGR_STATE_PRE_COPY, 3);
    EQ(VFU_MIGR_STATE_RESUME, 4);
    EQ(VFU_PCI_DEV_BAR0_REGION_IDX, 0);
    EQ(VFU_PCI_DEV_BAR1_REGION_IDX, 1);
    EQ(VFU_PCI_DEV_BAR2_REGION_IDX, 2);
    EQ(VFU_PCI_DEV_BAR3_REGION_IDX, 3);
    EQ(VFU_PCI_DEV_BAR4_REGION_IDX, 4);
    EQ(VFU_PCI_DEV_BAR5_REGION_IDX, 5);
    EQ(VFU_PCI_DEV_ROM_REGION_IDX, 6);
    EQ(VFU_PCI_DEV_CFG_REGION_IDX, 7);
    EQ(VFU_PCI_DEV_VGA_REGION_IDX, 8);
    EQ(VFU_PCI_DEV_NUM_REGIONS, 9);
    EQ(VFU_PCI_TYPE_CONVENTIONAL, 0);
    EQ(VFU_PCI_TYPE_PCI_X_1, 1);
    EQ(VFU_PCI_TYPE_PCI_X_2, 2);
    EQ(VFU_PCI_TYPE_EXPRESS, 3);
    EQ(VFU_GENERIC_DEV_MIGR_REGION_IDX, 0);
    EQ(VFU_GENERIC_DEV_NUM_REGIONS, 1);

    /* These are enumerators, not macros. */
    NOT_MACRO(VFU_PCI_DEV_BAR0_REGION_IDX);
    NOT_MACRO(VFU_PCI_DEV_CFG_REGION_IDX);
    NOT_MACRO(VFU_PCI_DEV_NUM_REGIONS);
    NOT_MACRO(VFU_DEV_INTX_IRQ);
    NOT_MACRO(VFU_DEV_NUM_IRQS);
    NOT_MACRO(VFU_PCI_TYPE_EXPRESS);

    /* vfu_dma_info_t */
    TYPE_IS(vfu_dma_info_t, struct vfu_dma_info);
    SIZE(vfu_dma_info_t, 56);
    ALIGN(vfu_dma_info_t, 8);
    OFF(vfu_dma_info_t, iova, 0);
    OFF(vfu_dma_info_t, vaddr, 16);
    OFF(vfu_dma_info_t, mapping, 24);
    OFF(vfu_dma_info_t, page_size, 40);
    OFF(vfu_dma_info_t, prot, 48);
    TYPE_IS(__typeof__(((vfu_dma_info_t *)0)->iova), struct iovec);
    TYPE_IS(__typeof__(((vfu_dma_info_t *)0)->vaddr), void *);
    TYPE_IS(__typeof__(((vfu_dma_info_t *)0)->mapping), struct iovec);
    TYPE_IS(__typeof__(((vfu_dma_info_t *)0)->page_size), size_t);
    TYPE_IS(__typeof__(((vfu_dma_info_t *)0)->prot), uint32_t);

    /* vfu_migration_callbacks_t */
    SIZE(vfu_migration_callbacks_t, 32);
    ALIGN(vfu_migration_callbacks_t, 8);
    OFF(vfu_migration_callbacks_t, version, 0);
    OFF(vfu_migration_callbacks_t, transition, 8);
    OFF(vfu_migration_callbacks_t, read_data, 16);
    OFF(vfu_migration_callbacks_t, write_data, 24);
    TYPE_IS(__typeof__(((vfu_migration_callbacks_t *)0)->version), int);
    TYPE_IS(__typeof__(((vfu_migration_callbacks_t *)0)->transition),
            int (*)(vfu_ctx_t *, vfu_migr_state_t));
    TYPE_IS(__typeof__(((vfu_migration_callbacks_t *)0)->read_data),
            ssize_t(*)(vfu_ctx_t *, void *, uint64_t));
    TYPE_IS(__typeof__(((vfu_migration_callbacks_t *)0)->write_data),
            ssize_t(*)(vfu_ctx_t *, void *, uint64_t));

    /* Callback typedefs are function types, not pointers. */
    TYPE_IS(vfu_log_fn_t, void(vfu_ctx_t *, int, const char *));
    TYPE_IS(vfu_region_access_cb_t, ssize_t(vfu_ctx_t *, char *, size_t, loff_t, bool));
    TYPE_IS(vfu_device_quiesce_cb_t, int(vfu_ctx_t *));
    TYPE_IS(vfu_reset_cb_t, int(vfu_ctx_t *, vfu_reset_type_t));
    TYPE_IS(vfu_dma_register_cb_t, void(vfu_ctx_t *, vfu_dma_info_t *));
    TYPE_IS(vfu_dma_unregister_cb_t, void(vfu_ctx_t *, vfu_dma_info_t *));
    TYPE_IS(vfu_dev_irq_state_cb_t, void(vfu_ctx_t *, uint32_t, uint32_t, bool));
}

static void
check_lib_macros(void)
{
    EQ(LIB_VFIO_USER_MAJOR, 0);
    EQ(LIB_VFIO_USER_MINOR, 2);
    EQ(LIBVFIO_USER_FLAG_ATTACH_NB, 1);
    EQ(VFU_REGION_FLAG_READ, 0x01);
    EQ(VFU_REGION_FLAG_WRITE, 0x02);
    EQ(VFU_REGION_FLAG_RW, 0x03);
    EQ(VFU_REGION_FLAG_MEM, 0x04);
    EQ(VFU_REGION_FLAG_ALWAYS_CB, 0x08);
    EQ(VFU_REGION_FLAG_64_BITS, 0x10);
    EQ(VFU_REGION_FLAG_PREFETCH, 0x20);
    EQ(VFU_REGION_FLAG_MASK, 0x3f);
    EQ(VFU_CAP_FLAG_EXTENDED, 1);
    EQ(VFU_CAP_FLAG_CALLBACK, 2);
    EQ(VFU_CAP_FLAG_READONLY, 4);
    EQ(LIBVFIO_USER_MAX_DMA_REGIONS, 1000000);
    EQ(VFU_MIGR_CALLBACKS_VERS, 2);
    EQ(VFU_SGL_DIRECT_ACCESS, 1);

    EQ(VFIO_USER_DEFAULT_MAX_DATA_XFER_SIZE, 1048576);
    EQ(PCI_BARS_NR, 6);
    EQ(PCI_BASE_ADDRESS_MEM_TYPE_LOCATABLE_32, 0);
    EQ(PCI_BASE_ADDRESS_MEM_TYPE_LOCATABLE_1M, 1);
    EQ(PCI_BASE_ADDRESS_MEM_TYPE_LOCATABLE_64, 2);
    EQ(VFIO_USER_PCI_CAP_MSI_SIZEOF, 24);
    EQ(VFIO_USER_PCI_CAP_EXP_SIZEOF, 60);

    /* Values taken from <linux/pci_regs.h>. */
    EQ(PCI_CFG_SPACE_SIZE, 256);
    EQ(PCI_CFG_SPACE_EXP_SIZE, 4096);
    EQ(PCI_STD_HEADER_SIZEOF, 64);
    EQ(PCI_PM_SIZEOF, 8);
    EQ(PCI_CAP_MSIX_SIZEOF, 12);
    EQ(PCI_EXT_CAP_DSN_SIZEOF, 12);
    EQ(PCI_CAP_LIST_ID, 0);
    EQ(PCI_CAP_LIST_NEXT, 1);
    EQ(PCI_MSIX_FLAGS, 2);
    EQ(PCI_MSIX_TABLE, 4);
    EQ(PCI_MSIX_PBA, 8);
    EQ(PCI_HEADER_TYPE_NORMAL, 0);
    EQ(PCI_CAP_ID_PM, 0x01);
    EQ(PCI_CAP_ID_MSI, 0x05);
    EQ(PCI_CAP_ID_VNDR, 0x09);
    EQ(PCI_CAP_ID_EXP, 0x10);
    EQ(PCI_CAP_ID_MSIX, 0x11);
    EQ(PCI_EXT_CAP_ID_DSN, 0x03);
    EQ(PCI_EXT_CAP_ID_VNDR, 0x0b);
}

static void
check_functions(void)
{
    /* dma_sg_size must be declared; sizeof does not evaluate the call. */
    EQ(sizeof(dma_sg_size()), sizeof(size_t));

    SIG(dma_sg_size, size_t(void));
    SIG(vfu_create_ctx, vfu_ctx_t * (vfu_trans_t, const char *, int, void *, vfu_dev_type_t));
    SIG(vfu_realize_ctx, int(vfu_ctx_t *));
    SIG(vfu_attach_ctx, int(vfu_ctx_t *));
    SIG(vfu_get_poll_fd, int(vfu_ctx_t *));
    SIG(vfu_run_ctx, int(vfu_ctx_t *));
    SIG(vfu_destroy_ctx, void(vfu_ctx_t *));
    SIG(vfu_get_private, void *(vfu_ctx_t *));
    SIG(vfu_log, void(vfu_ctx_t *, int, const char *, ...));
    SIG(vfu_setup_log, int(vfu_ctx_t *, vfu_log_fn_t *, int));
    SIG(vfu_setup_region, int(vfu_ctx_t *, int, size_t, vfu_region_access_cb_t *, int,
                              struct iovec *, uint32_t, int, uint64_t));
    SIG(vfu_setup_device_quiesce_cb, void(vfu_ctx_t *, vfu_device_quiesce_cb_t *));
    SIG(vfu_device_quiesced, int(vfu_ctx_t *, int));
    SIG(vfu_setup_device_reset_cb, int(vfu_ctx_t *, vfu_reset_cb_t *));
    SIG(vfu_setup_device_dma,
        int(vfu_ctx_t *, size_t, vfu_dma_register_cb_t *, vfu_dma_unregister_cb_t *));
    SIG(vfu_setup_device_nr_irqs, int(vfu_ctx_t *, enum vfu_dev_irq_type, uint32_t));
    SIG(vfu_setup_irq_state_callback,
        int(vfu_ctx_t *, enum vfu_dev_irq_type, vfu_dev_irq_state_cb_t *));
    SIG(vfu_setup_device_migration_callbacks, int(vfu_ctx_t *, const vfu_migration_callbacks_t *));
    SIG(vfu_irq_trigger, int(vfu_ctx_t *, uint32_t));
    SIG(vfu_addr_to_sgl, int(vfu_ctx_t *, vfu_dma_addr_t, size_t, dma_sg_t *, size_t, int));
    SIG(vfu_sgl_get, int(vfu_ctx_t *, dma_sg_t *, struct iovec *, size_t, int));
    SIG(vfu_sgl_mark_dirty, void(vfu_ctx_t *, dma_sg_t *, size_t));
    SIG(vfu_sgl_put, void(vfu_ctx_t *, dma_sg_t *, struct iovec *, size_t));
    SIG(vfu_sgl_read, int(vfu_ctx_t *, dma_sg_t *, size_t, void *, int));
    SIG(vfu_sgl_write, int(vfu_ctx_t *, dma_sg_t *, size_t, void *, int));
    SIG(vfu_pci_init, int(vfu_ctx_t *, vfu_pci_type_t, int, int));
    SIG(vfu_pci_set_id, void(vfu_ctx_t *, uint16_t, uint16_t, uint16_t, uint16_t));
    SIG(vfu_pci_set_class, void(vfu_ctx_t *, uint8_t, uint8_t, uint8_t));
    SIG(vfu_pci_get_config_space, vfu_pci_config_space_t * (vfu_ctx_t *));
    SIG(vfu_pci_add_capability, ssize_t(vfu_ctx_t *, size_t, int, void *));
    SIG(vfu_pci_find_capability, size_t(vfu_ctx_t *, bool, int));
    SIG(vfu_pci_find_next_capability, size_t(vfu_ctx_t *, bool, size_t, int));
    SIG(vfu_sg_is_mappable, bool(vfu_ctx_t *, dma_sg_t *));
    SIG(vfu_create_ioeventfd,
        int(vfu_ctx_t *, uint32_t, int, size_t, uint32_t, uint32_t, uint64_t, int, size_t));
}

static void
check_wire(void)
{
    /* Commands and message types. */
    EQ(VFIO_USER_VERSION, 1);
    EQ(VFIO_USER_DMA_MAP, 2);
    EQ(VFIO_USER_DMA_UNMAP, 3);
    EQ(VFIO_USER_DEVICE_GET_INFO, 4);
    EQ(VFIO_USER_DEVICE_GET_REGION_INFO, 5);
    EQ(VFIO_USER_DEVICE_GET_REGION_IO_FDS, 6);
    EQ(VFIO_USER_DEVICE_GET_IRQ_INFO, 7);
    EQ(VFIO_USER_DEVICE_SET_IRQS, 8);
    EQ(VFIO_USER_REGION_READ, 9);
    EQ(VFIO_USER_REGION_WRITE, 10);
    EQ(VFIO_USER_DMA_READ, 11);
    EQ(VFIO_USER_DMA_WRITE, 12);
    EQ(VFIO_USER_DEVICE_RESET, 13);
    EQ(VFIO_USER_REGION_WRITE_MULTI, 15);
    EQ(VFIO_USER_DEVICE_FEATURE, 16);
    EQ(VFIO_USER_MIG_DATA_READ, 17);
    EQ(VFIO_USER_MIG_DATA_WRITE, 18);
    EQ(VFIO_USER_MAX, 19);
    SIZE(enum vfio_user_command, 4);
    EQ(VFIO_USER_MESSAGE_COMMAND, 0);
    EQ(VFIO_USER_MESSAGE_REPLY, 1);

    /* Header. */
    SIZE(struct vfio_user_header, 16);
    ALIGN(struct vfio_user_header, 1);
    OFF(struct vfio_user_header, msg_id, 0);
    OFF(struct vfio_user_header, cmd, 2);
    OFF(struct vfio_user_header, msg_size, 4);
    OFF(struct vfio_user_header, flags, 8);
    OFF(struct vfio_user_header, error_no, 12);
    EQ(VFIO_USER_F_TYPE_MASK, 0xf);
    EQ(VFIO_USER_F_TYPE_COMMAND, 0x0);
    EQ(VFIO_USER_F_TYPE_REPLY, 0x1);
    EQ(VFIO_USER_F_NO_REPLY, 0x10);
    EQ(VFIO_USER_F_ERROR, 0x20);
    EQ(VFIO_USER_FLAGS_NO_REPLY, 0x1);

    /* Payloads. */
    SIZE(struct vfio_user_version, 4);
    ALIGN(struct vfio_user_version, 1);
    OFF(struct vfio_user_version, major, 0);
    OFF(struct vfio_user_version, minor, 2);
    OFF(struct vfio_user_version, data, 4);

    SIZE(struct vfio_user_device_info, 16);
    ALIGN(struct vfio_user_device_info, 1);
    OFF(struct vfio_user_device_info, argsz, 0);
    OFF(struct vfio_user_device_info, flags, 4);
    OFF(struct vfio_user_device_info, num_regions, 8);
    OFF(struct vfio_user_device_info, num_irqs, 12);

    SIZE(struct vfio_user_bitmap, 16);
    ALIGN(struct vfio_user_bitmap, 1);
    OFF(struct vfio_user_bitmap, pgsize, 0);
    OFF(struct vfio_user_bitmap, size, 8);
    OFF(struct vfio_user_bitmap, data, 16);
    SIZE(((struct vfio_user_bitmap *)0)->data[0], 1);

    SIZE(struct vfio_user_dma_map, 32);
    ALIGN(struct vfio_user_dma_map, 1);
    OFF(struct vfio_user_dma_map, argsz, 0);
    OFF(struct vfio_user_dma_map, flags, 4);
    OFF(struct vfio_user_dma_map, offset, 8);
    OFF(struct vfio_user_dma_map, addr, 16);
    OFF(struct vfio_user_dma_map, size, 24);

    SIZE(struct vfio_user_dma_unmap, 24);
    ALIGN(struct vfio_user_dma_unmap, 8);
    OFF(struct vfio_user_dma_unmap, argsz, 0);
    OFF(struct vfio_user_dma_unmap, flags, 4);
    OFF(struct vfio_user_dma_unmap, addr, 8);
    OFF(struct vfio_user_dma_unmap, size, 16);
    OFF(struct vfio_user_dma_unmap, bitmap, 24);

    SIZE(struct vfio_user_region_access, 16);
    ALIGN(struct vfio_user_region_access, 1);
    OFF(struct vfio_user_region_access, offset, 0);
    OFF(struct vfio_user_region_access, region, 8);
    OFF(struct vfio_user_region_access, count, 12);
    OFF(struct vfio_user_region_access, data, 16);

    SIZE(struct vfio_user_dma_region_access, 16);
    ALIGN(struct vfio_user_dma_region_access, 1);
    OFF(struct vfio_user_dma_region_access, addr, 0);
    OFF(struct vfio_user_dma_region_access, count, 8);
    OFF(struct vfio_user_dma_region_access, data, 16);

    SIZE(struct vfio_user_irq_info, 4);
    OFF(struct vfio_user_irq_info, subindex, 0);

    TYPE_IS(vfio_user_region_io_fds_request_t, struct vfio_user_region_io_fds_request);
    SIZE(vfio_user_region_io_fds_request_t, 16);
    ALIGN(vfio_user_region_io_fds_request_t, 1);
    OFF(vfio_user_region_io_fds_request_t, argsz, 0);
    OFF(vfio_user_region_io_fds_request_t, flags, 4);
    OFF(vfio_user_region_io_fds_request_t, index, 8);
    OFF(vfio_user_region_io_fds_request_t, count, 12);

    TYPE_IS(vfio_user_sub_region_ioeventfd_t, struct vfio_user_sub_region_ioeventfd);
    SIZE(vfio_user_sub_region_ioeventfd_t, 48);
    ALIGN(vfio_user_sub_region_ioeventfd_t, 1);
    OFF(vfio_user_sub_region_ioeventfd_t, gpa_offset, 0);
    OFF(vfio_user_sub_region_ioeventfd_t, size, 8);
    OFF(vfio_user_sub_region_ioeventfd_t, fd_index, 16);
    OFF(vfio_user_sub_region_ioeventfd_t, type, 20);
    OFF(vfio_user_sub_region_ioeventfd_t, flags, 24);
    OFF(vfio_user_sub_region_ioeventfd_t, shadow_mem_fd_index, 28);
    OFF(vfio_user_sub_region_ioeventfd_t, shadow_offset, 32);
    OFF(vfio_user_sub_region_ioeventfd_t, datamatch, 40);

    TYPE_IS(vfio_user_sub_region_ioregionfd_t, struct vfio_user_sub_region_ioregionfd);
    SIZE(vfio_user_sub_region_ioregionfd_t, 40);
    ALIGN(vfio_user_sub_region_ioregionfd_t, 1);
    OFF(vfio_user_sub_region_ioregionfd_t, offset, 0);
    OFF(vfio_user_sub_region_ioregionfd_t, size, 8);
    OFF(vfio_user_sub_region_ioregionfd_t, fd_index, 16);
    OFF(vfio_user_sub_region_ioregionfd_t, type, 20);
    OFF(vfio_user_sub_region_ioregionfd_t, flags, 24);
    OFF(vfio_user_sub_region_ioregionfd_t, padding, 28);
    OFF(vfio_user_sub_region_ioregionfd_t, user_data, 32);

    SIZE(union sub_region, 48);
    OFF(union sub_region, ioeventfd, 0);
    OFF(union sub_region, ioregionfd, 0);

    TYPE_IS(vfio_user_region_io_fds_reply_t, struct vfio_user_region_io_fds_reply);
    SIZE(vfio_user_region_io_fds_reply_t, 16);
    ALIGN(vfio_user_region_io_fds_reply_t, 1);
    OFF(vfio_user_region_io_fds_reply_t, argsz, 0);
    OFF(vfio_user_region_io_fds_reply_t, flags, 4);
    OFF(vfio_user_region_io_fds_reply_t, index, 8);
    OFF(vfio_user_region_io_fds_reply_t, count, 12);
    OFF(vfio_user_region_io_fds_reply_t, sub_regions, 16);
    SIZE(((vfio_user_region_io_fds_reply_t *)0)->sub_regions[0], 48);

    SIZE(struct vfio_user_device_feature_dma_logging_range, 16);
    OFF(struct vfio_user_device_feature_dma_logging_range, iova, 0);
    OFF(struct vfio_user_device_feature_dma_logging_range, length, 8);

    SIZE(struct vfio_user_device_feature_dma_logging_control, 16);
    ALIGN(struct vfio_user_device_feature_dma_logging_control, 1);
    OFF(struct vfio_user_device_feature_dma_logging_control, page_size, 0);
    OFF(struct vfio_user_device_feature_dma_logging_control, num_ranges, 8);
    OFF(struct vfio_user_device_feature_dma_logging_control, reserved, 12);
    OFF(struct vfio_user_device_feature_dma_logging_control, ranges, 16);

    SIZE(struct vfio_user_device_feature_dma_logging_report, 24);
    ALIGN(struct vfio_user_device_feature_dma_logging_report, 1);
    OFF(struct vfio_user_device_feature_dma_logging_report, iova, 0);
    OFF(struct vfio_user_device_feature_dma_logging_report, length, 8);
    OFF(struct vfio_user_device_feature_dma_logging_report, page_size, 16);
    OFF(struct vfio_user_device_feature_dma_logging_report, bitmap, 24);

    SIZE(struct vfio_user_device_feature, 8);
    ALIGN(struct vfio_user_device_feature, 1);
    OFF(struct vfio_user_device_feature, argsz, 0);
    OFF(struct vfio_user_device_feature, flags, 4);
    OFF(struct vfio_user_device_feature, data, 8);

    SIZE(struct vfio_user_device_feature_migration, 8);
    OFF(struct vfio_user_device_feature_migration, flags, 0);

    SIZE(struct vfio_user_device_feature_mig_state, 8);
    OFF(struct vfio_user_device_feature_mig_state, device_state, 0);
    OFF(struct vfio_user_device_feature_mig_state, data_fd, 4);

    SIZE(struct vfio_user_mig_data, 8);
    ALIGN(struct vfio_user_mig_data, 1);
    OFF(struct vfio_user_mig_data, argsz, 0);
    OFF(struct vfio_user_mig_data, size, 4);
    OFF(struct vfio_user_mig_data, data, 8);

    /* Flags and constants. */
    EQ(VFIO_USER_F_DMA_REGION_READ, 1);
    EQ(VFIO_USER_F_DMA_REGION_WRITE, 2);
    EQ(VFIO_USER_F_DMA_REGION_MMAP, 4);
    EQ(VFIO_USER_F_DMA_REGION_FILE_IO, 8);
    EQ(VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, 1);
    EQ(VFIO_DMA_UNMAP_FLAG_ALL, 2);
    EQ(VFIO_USER_IO_FD_TYPE_IOEVENTFD, 0);
    EQ(VFIO_USER_IO_FD_TYPE_IOREGIONFD, 1);
    EQ(VFIO_USER_IO_FD_TYPE_IOEVENTFD_SHADOW, 2);
    EQ(VFIO_DEVICE_FEATURE_DMA_LOGGING_START, 6);
    EQ(VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, 7);
    EQ(VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, 8);
    EQ(VFIO_DEVICE_FEATURE_MASK, 0xffff);
    EQ(VFIO_DEVICE_FEATURE_GET, 1 << 16);
    EQ(VFIO_DEVICE_FEATURE_SET, 1 << 17);
    EQ(VFIO_DEVICE_FEATURE_PROBE, 1 << 18);
    EQ(VFIO_MIGRATION_STOP_COPY, 1);
    EQ(VFIO_MIGRATION_P2P, 2);
    EQ(VFIO_MIGRATION_PRE_COPY, 4);
    EQ(VFIO_DEVICE_FEATURE_MIGRATION, 1);
    EQ(VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, 2);

    EQ(VFIO_USER_DEVICE_STATE_ERROR, 0);
    EQ(VFIO_USER_DEVICE_STATE_STOP, 1);
    EQ(VFIO_USER_DEVICE_STATE_RUNNING, 2);
    EQ(VFIO_USER_DEVICE_STATE_STOP_COPY, 3);
    EQ(VFIO_USER_DEVICE_STATE_RESUMING, 4);
    EQ(VFIO_USER_DEVICE_STATE_RUNNING_P2P, 5);
    EQ(VFIO_USER_DEVICE_STATE_PRE_COPY, 6);
    EQ(VFIO_USER_DEVICE_STATE_PRE_COPY_P2P, 7);
    EQ(VFIO_USER_DEVICE_NUM_STATES, 8);

    /* Linux VFIO structs and values reused on the wire. */
    SIZE(struct vfio_region_info, 32);
    OFF(struct vfio_region_info, argsz, 0);
    OFF(struct vfio_region_info, flags, 4);
    OFF(struct vfio_region_info, index, 8);
    OFF(struct vfio_region_info, cap_offset, 12);
    OFF(struct vfio_region_info, size, 16);
    OFF(struct vfio_region_info, offset, 24);
    SIZE(struct vfio_region_info_cap_sparse_mmap, 16);
    OFF(struct vfio_region_info_cap_sparse_mmap, nr_areas, 8);
    OFF(struct vfio_region_info_cap_sparse_mmap, areas, 16);
    SIZE(struct vfio_region_sparse_mmap_area, 16);
    SIZE(struct vfio_irq_info, 16);
    SIZE(struct vfio_irq_set, 20);
    OFF(struct vfio_irq_set, data, 20);
    EQ(VFIO_DEVICE_FLAGS_RESET, 1);
    EQ(VFIO_DEVICE_FLAGS_PCI, 2);
    EQ(VFIO_REGION_INFO_FLAG_READ, 1);
    EQ(VFIO_REGION_INFO_FLAG_WRITE, 2);
    EQ(VFIO_REGION_INFO_FLAG_MMAP, 4);
    EQ(VFIO_REGION_INFO_FLAG_CAPS, 8);
    EQ(VFIO_REGION_INFO_CAP_SPARSE_MMAP, 1);
    EQ(VFIO_IRQ_INFO_EVENTFD, 1);
    EQ(VFIO_IRQ_SET_DATA_NONE, 1);
    EQ(VFIO_IRQ_SET_DATA_BOOL, 2);
    EQ(VFIO_IRQ_SET_DATA_EVENTFD, 4);
    EQ(VFIO_IRQ_SET_ACTION_MASK, 8);
    EQ(VFIO_IRQ_SET_ACTION_UNMASK, 0x10);
    EQ(VFIO_IRQ_SET_ACTION_TRIGGER, 0x20);
}

static void
check_pci_defs(void)
{
    SIZE(vfu_pci_hdr_id_t, 4);
    SIZE(vfu_pci_hdr_cmd_t, 2);
    SIZE(vfu_pci_hdr_sts_t, 2);
    SIZE(vfu_pci_hdr_cc_t, 3);
    SIZE(vfu_pci_hdr_htype_t, 1);
    SIZE(vfu_pci_hdr_bist_t, 1);
    SIZE(vfu_bar_t, 4);
    SIZE(vfu_pci_hdr_ss_t, 4);
    SIZE(vfu_pci_hdr_intr_t, 2);
    SIZE(vfu_pci_hdr_t, 0x40);
    SIZE(vfu_pci_config_space_t, 0x100);
    ALIGN(vfu_pci_hdr_id_t, 1);
    ALIGN(vfu_bar_t, 1);
    ALIGN(vfu_pci_hdr_t, 1);
    ALIGN(vfu_pci_config_space_t, 1);

    OFF(vfu_pci_hdr_id_t, raw, 0);
    OFF(vfu_pci_hdr_id_t, vid, 0);
    OFF(vfu_pci_hdr_id_t, did, 2);
    OFF(vfu_pci_hdr_cc_t, pi, 0);
    OFF(vfu_pci_hdr_cc_t, scc, 1);
    OFF(vfu_pci_hdr_cc_t, bcc, 2);
    SIZE(((vfu_pci_hdr_cc_t *)0)->raw, 3);
    SIZE(((vfu_pci_hdr_htype_t *)0)->raw, 1);
    SIZE(((vfu_pci_hdr_bist_t *)0)->raw, 1);
    OFF(vfu_pci_hdr_ss_t, vid, 0);
    OFF(vfu_pci_hdr_ss_t, sid, 2);
    OFF(vfu_pci_hdr_intr_t, iline, 0);
    OFF(vfu_pci_hdr_intr_t, ipin, 1);

    OFF(vfu_pci_hdr_t, raw, 0x00);
    SIZE(((vfu_pci_hdr_t *)0)->raw, PCI_STD_HEADER_SIZEOF);
    OFF(vfu_pci_hdr_t, id, 0x00);
    OFF(vfu_pci_hdr_t, cmd, 0x04);
    OFF(vfu_pci_hdr_t, sts, 0x06);
    OFF(vfu_pci_hdr_t, rid, 0x08);
    OFF(vfu_pci_hdr_t, cc, 0x09);
    OFF(vfu_pci_hdr_t, cls, 0x0c);
    OFF(vfu_pci_hdr_t, mlt, 0x0d);
    OFF(vfu_pci_hdr_t, htype, 0x0e);
    OFF(vfu_pci_hdr_t, bist, 0x0f);
    OFF(vfu_pci_hdr_t, bars, 0x10);
    SIZE(((vfu_pci_hdr_t *)0)->bars, 6 * 4);
    OFF(vfu_pci_hdr_t, ccptr, 0x28);
    OFF(vfu_pci_hdr_t, ss, 0x2c);
    OFF(vfu_pci_hdr_t, erom, 0x30);
    OFF(vfu_pci_hdr_t, cap, 0x34);
    OFF(vfu_pci_hdr_t, res1, 0x35);
    SIZE(((vfu_pci_hdr_t *)0)->res1, 7);
    OFF(vfu_pci_hdr_t, intr, 0x3c);
    OFF(vfu_pci_hdr_t, mgnt, 0x3e);
    OFF(vfu_pci_hdr_t, mlat, 0x3f);

    OFF(vfu_pci_config_space_t, raw, 0);
    OFF(vfu_pci_config_space_t, hdr, 0);
    SIZE(((vfu_pci_config_space_t *)0)->raw, PCI_CFG_SPACE_SIZE);
    OFF(vfu_pci_config_space_t, extended, 256);

    /* Command register bitfields. */
    BF_RAW(vfu_pci_hdr_cmd_t, iose, 0x1);
    BF_RAW(vfu_pci_hdr_cmd_t, mse, 0x2);
    BF_RAW(vfu_pci_hdr_cmd_t, bme, 0x4);
    BF_RAW(vfu_pci_hdr_cmd_t, sce, 0x8);
    BF_RAW(vfu_pci_hdr_cmd_t, mwie, 0x10);
    BF_RAW(vfu_pci_hdr_cmd_t, vga, 0x20);
    BF_RAW(vfu_pci_hdr_cmd_t, pee, 0x40);
    BF_RAW(vfu_pci_hdr_cmd_t, zero, 0x80);
    BF_RAW(vfu_pci_hdr_cmd_t, see, 0x100);
    BF_RAW(vfu_pci_hdr_cmd_t, fbe, 0x200);
    BF_RAW(vfu_pci_hdr_cmd_t, id, 0x400);
    BF_RAW(vfu_pci_hdr_cmd_t, res1, 0xf800);

    /* Status register bitfields. */
    BF_RAW(vfu_pci_hdr_sts_t, res1, 0x7);
    BF_RAW(vfu_pci_hdr_sts_t, is, 0x8);
    BF_RAW(vfu_pci_hdr_sts_t, cl, 0x10);
    BF_RAW(vfu_pci_hdr_sts_t, c66, 0x20);
    BF_RAW(vfu_pci_hdr_sts_t, res2, 0x40);
    BF_RAW(vfu_pci_hdr_sts_t, fbc, 0x80);
    BF_RAW(vfu_pci_hdr_sts_t, dpd, 0x100);
    BF_RAW(vfu_pci_hdr_sts_t, devt, 0x600);
    BF_RAW(vfu_pci_hdr_sts_t, sta, 0x800);
    BF_RAW(vfu_pci_hdr_sts_t, rta, 0x1000);
    BF_RAW(vfu_pci_hdr_sts_t, rma, 0x2000);
    BF_RAW(vfu_pci_hdr_sts_t, sse, 0x4000);
    BF_RAW(vfu_pci_hdr_sts_t, dpe, 0x8000);

    /* BAR bitfields. */
    BF_RAW(vfu_bar_t, mem.region_type, 0x1);
    BF_RAW(vfu_bar_t, mem.locatable, 0x6);
    BF_RAW(vfu_bar_t, mem.prefetchable, 0x8);
    BF_RAW(vfu_bar_t, mem.base_address, 0xfffffff0);
    BF_RAW(vfu_bar_t, io.region_type, 0x1);
    BF_RAW(vfu_bar_t, io.reserved, 0x2);
    BF_RAW(vfu_bar_t, io.base_address, 0xfffffffc);

    /* Plain member views through raw. */
    BF_RAW(vfu_pci_hdr_id_t, vid, 0x0000ffff);
    BF_RAW(vfu_pci_hdr_id_t, did, 0xffff0000);
    BF_RAW(vfu_pci_hdr_ss_t, vid, 0x0000ffff);
    BF_RAW(vfu_pci_hdr_ss_t, sid, 0xffff0000);
    BF_RAW(vfu_pci_hdr_intr_t, iline, 0x00ff);
    BF_RAW(vfu_pci_hdr_intr_t, ipin, 0xff00);
}

static void
check_pci_caps(void)
{
    /* common.h */
    SIZE(struct cap_hdr, 2);
    OFF(struct cap_hdr, id, PCI_CAP_LIST_ID);
    OFF(struct cap_hdr, next, PCI_CAP_LIST_NEXT);
    SIZE(struct vsc, 3);
    OFF(struct vsc, hdr, 0);
    OFF(struct vsc, size, 2);
    OFF(struct vsc, data, 3);
    SIZE(struct pcie_ext_cap_hdr, 4);
    ALIGN(struct pcie_ext_cap_hdr, 1);
    BF(struct pcie_ext_cap_hdr, id, 0x0000ffff);
    BF(struct pcie_ext_cap_hdr, version, 0x000f0000);
    BF(struct pcie_ext_cap_hdr, next, 0xfff00000);
    SIZE(struct pcie_ext_cap_vsc_hdr, 8);
    OFF(struct pcie_ext_cap_vsc_hdr, hdr, 0);
    OFF(struct pcie_ext_cap_vsc_hdr, data, 8);
    BF(struct pcie_ext_cap_vsc_hdr, hdr.id, 0x000000000000ffffULL);
    BF(struct pcie_ext_cap_vsc_hdr, id, 0x0000ffff00000000ULL);
    BF(struct pcie_ext_cap_vsc_hdr, rev, 0x000f000000000000ULL);
    BF(struct pcie_ext_cap_vsc_hdr, len, 0xfff0000000000000ULL);

    /* dsn.h */
    SIZE(struct dsncap, PCI_EXT_CAP_DSN_SIZEOF);
    SIZE(struct dsncap, 12);
    OFF(struct dsncap, hdr, 0);
    OFF(struct dsncap, sn_lo, 4);
    OFF(struct dsncap, sn_hi, 8);

    /* msi.h */
    SIZE(struct mc, 2);
    BF(struct mc, msie, 0x1);
    BF(struct mc, mmc, 0xe);
    BF(struct mc, mme, 0x70);
    BF(struct mc, c64, 0x80);
    BF(struct mc, pvm, 0x100);
    BF(struct mc, res1, 0xfe00);
    SIZE(struct ma, 4);
    BF(struct ma, res1, 0x3);
    BF(struct ma, addr, 0xfffffffc);
    SIZE(struct msicap, VFIO_USER_PCI_CAP_MSI_SIZEOF);
    SIZE(struct msicap, 24);
    ALIGN(struct msicap, 1);
    OFF(struct msicap, hdr, 0);
    OFF(struct msicap, mc, 2);
    OFF(struct msicap, ma, 4);
    OFF(struct msicap, mua, 8);
    OFF(struct msicap, md, 12);
    OFF(struct msicap, padding, 14);
    OFF(struct msicap, mmask, 16);
    OFF(struct msicap, mpend, 20);

    /* msix.h */
    SIZE(struct mxc, 2);
    BF(struct mxc, ts, 0x7ff);
    BF(struct mxc, reserved, 0x3800);
    BF(struct mxc, fm, 0x4000);
    BF(struct mxc, mxe, 0x8000);
    SIZE(struct mtab, 4);
    BF(struct mtab, tbir, 0x7);
    BF(struct mtab, to, 0xfffffff8);
    SIZE(struct mpba, 4);
    BF(struct mpba, pbir, 0x7);
    BF(struct mpba, pbao, 0xfffffff8);
    SIZE(struct msixcap, PCI_CAP_MSIX_SIZEOF);
    SIZE(struct msixcap, 12);
    ALIGN(struct msixcap, 4);
    OFF(struct msixcap, hdr, 0);
    OFF(struct msixcap, mxc, PCI_MSIX_FLAGS);
    OFF(struct msixcap, mtab, PCI_MSIX_TABLE);
    OFF(struct msixcap, mpba, PCI_MSIX_PBA);

    /* pm.h */
    SIZE(struct pc, 2);
    BF(struct pc, vs, 0x7);
    BF(struct pc, pmec, 0x8);
    BF(struct pc, res, 0x10);
    BF(struct pc, dsi, 0x20);
    BF(struct pc, auxc, 0x1c0);
    BF(struct pc, d1s, 0x200);
    BF(struct pc, d2s, 0x400);
    BF(struct pc, psup, 0xf800);
    SIZE(struct pmcs, 2);
    OFF(struct pmcs, raw, 0);
    BF_RAW(struct pmcs, ps, 0x3);
    BF_RAW(struct pmcs, res1, 0x4);
    BF_RAW(struct pmcs, nsfrst, 0x8);
    BF_RAW(struct pmcs, res2, 0xf0);
    BF_RAW(struct pmcs, pmee, 0x100);
    BF_RAW(struct pmcs, dse, 0x1e00);
    BF_RAW(struct pmcs, dsc, 0x6000);
    BF_RAW(struct pmcs, pmes, 0x8000);
    SIZE(struct pmcap, PCI_PM_SIZEOF);
    SIZE(struct pmcap, 8);
    OFF(struct pmcap, hdr, 0);
    OFF(struct pmcap, pc, 2);
    OFF(struct pmcap, pmcs, 4);
    OFF(struct pmcap, pmcsr_bse, 6);
    OFF(struct pmcap, data, 7);

    /* px.h */
    SIZE(struct pxcaps, 2);
    BF(struct pxcaps, ver, 0xf);
    BF(struct pxcaps, dpt, 0xf0);
    BF(struct pxcaps, si, 0x100);
    BF(struct pxcaps, imn, 0x3e00);
    BF(struct pxcaps, res1, 0xc000);

    SIZE(struct pxdcap, 4);
    BF(struct pxdcap, mps, 0x7);
    BF(struct pxdcap, pfs, 0x18);
    BF(struct pxdcap, etfs, 0x20);
    BF(struct pxdcap, l0sl, 0x1c0);
    BF(struct pxdcap, l1l, 0xe00);
    BF(struct pxdcap, res1, 0x7000);
    BF(struct pxdcap, rer, 0x8000);
    BF(struct pxdcap, res2, 0x30000);
    BF(struct pxdcap, csplv, 0x3fc0000);
    BF(struct pxdcap, cspls, 0xc000000);
    BF(struct pxdcap, flrc, 0x10000000);
    BF(struct pxdcap, res3, 0xe0000000);

    SIZE(union pxdc, 2);
    BF_RAW(union pxdc, cere, 0x1);
    BF_RAW(union pxdc, nfere, 0x2);
    BF_RAW(union pxdc, fere, 0x4);
    BF_RAW(union pxdc, urre, 0x8);
    BF_RAW(union pxdc, ero, 0x10);
    BF_RAW(union pxdc, mps, 0xe0);
    BF_RAW(union pxdc, ete, 0x100);
    BF_RAW(union pxdc, pfe, 0x200);
    BF_RAW(union pxdc, appme, 0x400);
    BF_RAW(union pxdc, ens, 0x800);
    BF_RAW(union pxdc, mrrs, 0x7000);
    BF_RAW(union pxdc, iflr, 0x8000);

    SIZE(union pxlc, 2);
    BF_RAW(union pxlc, aspmc, 0x3);
    BF_RAW(union pxlc, rsvdp1, 0x4);
    BF_RAW(union pxlc, rcb, 0x8);
    BF_RAW(union pxlc, ld, 0x10);
    BF_RAW(union pxlc, rl, 0x20);
    BF_RAW(union pxlc, ccc, 0x40);
    BF_RAW(union pxlc, es, 0x80);
    BF_RAW(union pxlc, clkreq_en, 0x100);
    BF_RAW(union pxlc, hawd, 0x200);
    BF_RAW(union pxlc, lbmie, 0x400);
    BF_RAW(union pxlc, labie, 0x800);
    BF_RAW(union pxlc, rsvdp2, 0xf000);

    SIZE(struct pxdcap2, 4);
    BF(struct pxdcap2, ctrs, 0xf);
    BF(struct pxdcap2, ctds, 0x10);
    BF(struct pxdcap2, arifs, 0x20);
    BF(struct pxdcap2, aors, 0x40);
    BF(struct pxdcap2, aocs32, 0x80);
    BF(struct pxdcap2, aocs64, 0x100);
    BF(struct pxdcap2, ccs128, 0x200);
    BF(struct pxdcap2, nprpr, 0x400);
    BF(struct pxdcap2, ltrs, 0x800);
    BF(struct pxdcap2, tphcs, 0x3000);
    BF(struct pxdcap2, ln, 0xc000);
    BF(struct pxdcap2, tcs, 0x10000);
    BF(struct pxdcap2, trs, 0x20000);
    BF(struct pxdcap2, obffs, 0xc0000);
    BF(struct pxdcap2, effs, 0x100000);
    BF(struct pxdcap2, eetps, 0x200000);
    BF(struct pxdcap2, meetp, 0xc00000);
    BF(struct pxdcap2, eprs, 0x3000000);
    BF(struct pxdcap2, eprir, 0x4000000);
    BF(struct pxdcap2, res1, 0x8000000);
    BF(struct pxdcap2, dmwcs, 0x10000000);
    BF(struct pxdcap2, dmwls, 0x60000000);
    BF(struct pxdcap2, frss, 0x80000000);

    SIZE(union pxdc2, 2);
    BF_RAW(union pxdc2, comp_timeout, 0xf);
    BF_RAW(union pxdc2, comp_timout_dis, 0x10);
    BF_RAW(union pxdc2, ari, 0x20);
    BF_RAW(union pxdc2, atomic_req, 0x40);
    BF_RAW(union pxdc2, atomic_egress_block, 0x80);
    BF_RAW(union pxdc2, ido_req_en, 0x100);
    BF_RAW(union pxdc2, ido_cmp_en, 0x200);
    BF_RAW(union pxdc2, ltr_en, 0x400);
    BF_RAW(union pxdc2, obff_en, 0x1800);
    BF_RAW(union pxdc2, end_end_tlp_prefix_block, 0x2000);

    SIZE(struct pxds, 2);
    SIZE(struct pxls, 2);
    SIZE(struct pxsc, 2);
    SIZE(struct pxss, 2);
    SIZE(struct pxrc, 2);
    SIZE(struct pxrcap, 2);
    SIZE(struct pxds2, 2);
    SIZE(struct pxlc2, 2);
    SIZE(struct pxls2, 2);
    SIZE(struct pxsc2, 2);
    SIZE(struct pxss2, 2);
    BF(struct pxds, stuff, 0xffff);
    BF(struct pxsc2, stuff, 0xffff);
    SIZE(struct pxlcap, 4);
    SIZE(struct pxscap, 4);
    SIZE(struct pxrs, 4);
    SIZE(struct pxlcap2, 4);
    SIZE(struct pxscap2, 4);
    BF(struct pxlcap, stuff, 0xffffffff);
    BF(struct pxscap2, stuff, 0xffffffff);

    SIZE(struct pxcap, VFIO_USER_PCI_CAP_EXP_SIZEOF);
    SIZE(struct pxcap, 60);
    ALIGN(struct pxcap, 1);
    OFF(struct pxcap, hdr, 0);
    OFF(struct pxcap, pxcaps, 2);
    OFF(struct pxcap, pxdcap, 4);
    OFF(struct pxcap, pxdc, 8);
    OFF(struct pxcap, pxds, 10);
    OFF(struct pxcap, pxlcap, 12);
    OFF(struct pxcap, pxlc, 16);
    OFF(struct pxcap, pxls, 18);
    OFF(struct pxcap, pxscap, 20);
    OFF(struct pxcap, pxsc, 24);
    OFF(struct pxcap, pxss, 26);
    OFF(struct pxcap, pxrc, 28);
    OFF(struct pxcap, pxrcap, 30);
    OFF(struct pxcap, pxrs, 32);
    OFF(struct pxcap, pxdcap2, 36);
    OFF(struct pxcap, pxdc2, 40);
    OFF(struct pxcap, pxds2, 42);
    OFF(struct pxcap, pxlcap2, 44);
    OFF(struct pxcap, pxlc2, 48);
    OFF(struct pxcap, pxls2, 50);
    OFF(struct pxcap, pxscap2, 52);
    OFF(struct pxcap, pxsc2, 56);
    OFF(struct pxcap, pxss2, 58);
}

int
main(void)
{
    check_headers_and_deps();
    check_types();
    check_lib_macros();
    check_functions();
    check_wire();
    check_pci_defs();
    check_pci_caps();

    printf("%u passed, %u failed\n", n_passed, n_failed);
    return n_failed == 0 ? 0 : 1;
}
