/*
 * libvfio-user: PCI Express capability.
 */

#ifndef LIB_VFIO_USER_PCI_CAPS_PX_H
#define LIB_VFIO_USER_PCI_CAPS_PX_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* PCI Express Capabilities register. */
struct pxcaps {
    uint16_t ver:4;         /* capability version */
    uint16_t dpt:4;         /* device/port type */
    uint16_t si:1;          /* slot implemented */
    uint16_t imn:5;         /* interrupt message number */
    uint16_t res1:2;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxcaps) == 0x2, "struct pxcaps must be 2 bytes");

/* Device Capabilities register. */
struct pxdcap {
    uint32_t mps:3;         /* max payload size supported */
    uint32_t pfs:2;         /* phantom functions supported */
    uint32_t etfs:1;        /* extended tag field supported */
    uint32_t l0sl:3;        /* endpoint L0s acceptable latency */
    uint32_t l1l:3;         /* endpoint L1 acceptable latency */
    uint32_t res1:3;
    uint32_t rer:1;         /* role-based error reporting */
    uint32_t res2:2;
    uint32_t csplv:8;       /* captured slot power limit value */
    uint32_t cspls:2;       /* captured slot power limit scale */
    uint32_t flrc:1;        /* function level reset capable */
    uint32_t res3:3;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxdcap) == 0x4, "struct pxdcap must be 4 bytes");

/* Device Control register. */
union pxdc {
    uint16_t raw;
    struct {
        uint16_t cere:1;    /* correctable error reporting enable */
        uint16_t nfere:1;   /* non-fatal error reporting enable */
        uint16_t fere:1;    /* fatal error reporting enable */
        uint16_t urre:1;    /* unsupported request reporting enable */
        uint16_t ero:1;     /* relaxed ordering enable */
        uint16_t mps:3;     /* max payload size */
        uint16_t ete:1;     /* extended tag field enable */
        uint16_t pfe:1;     /* phantom functions enable */
        uint16_t appme:1;   /* aux power PM enable */
        uint16_t ens:1;     /* no snoop enable */
        uint16_t mrrs:3;    /* max read request size */
        uint16_t iflr:1;    /* initiate function level reset */
    } __attribute__((packed));
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(union pxdc) == 0x2, "union pxdc must be 2 bytes");

/* Registers the library does not interpret: kept as opaque bits. */
struct pxds {
    uint16_t stuff:16;      /* Device Status */
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxds) == 0x2, "struct pxds must be 2 bytes");

struct pxlcap {
    uint32_t stuff:32;      /* Link Capabilities */
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxlcap) == 0x4, "struct pxlcap must be 4 bytes");

/* Link Control register. */
union pxlc {
    uint16_t raw;
    struct {
        uint16_t aspmc:2;       /* ASPM control */
        uint16_t rsvdp1:1;
        uint16_t rcb:1;         /* read completion boundary */
        uint16_t ld:1;          /* link disable */
        uint16_t rl:1;          /* retrain link */
        uint16_t ccc:1;         /* common clock configuration */
        uint16_t es:1;          /* extended synch */
        uint16_t clkreq_en:1;   /* clock power management enable */
        uint16_t hawd:1;        /* hardware autonomous width disable */
        uint16_t lbmie:1;       /* bandwidth management interrupt enable */
        uint16_t labie:1;       /* autonomous bandwidth interrupt enable */
        uint16_t rsvdp2:4;
    } __attribute__((packed));
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(union pxlc) == 0x2, "union pxlc must be 2 bytes");

struct pxls {
    uint16_t stuff:16;      /* Link Status */
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxls) == 0x2, "struct pxls must be 2 bytes");

struct pxscap {
    uint32_t stuff:32;      /* Slot Capabilities */
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxscap) == 0x4, "struct pxscap must be 4 bytes");

struct pxsc {
    uint16_t stuff:16;      /* Slot Control */
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxsc) == 0x2, "struct pxsc must be 2 bytes");

struct pxss {
    uint16_t stuff:16;      /* Slot Status */
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxss) == 0x2, "struct pxss must be 2 bytes");

struct pxrc {
    uint16_t stuff:16;      /* Root Control */
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxrc) == 0x2, "struct pxrc must be 2 bytes");

struct pxrcap {
    uint16_t stuff:16;      /* Root Capabilities */
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxrcap) == 0x2, "struct pxrcap must be 2 bytes");

struct pxrs {
    uint32_t stuff:32;      /* Root Status */
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxrs) == 0x4, "struct pxrs must be 4 bytes");

/* Device Capabilities 2 register. */
struct pxdcap2 {
    uint32_t ctrs:4;        /* completion timeout ranges supported */
    uint32_t ctds:1;        /* completion timeout disable supported */
    uint32_t arifs:1;       /* ARI forwarding supported */
    uint32_t aors:1;        /* AtomicOp routing supported */
    uint32_t aocs32:1;      /* 32-bit AtomicOp completer supported */
    uint32_t aocs64:1;      /* 64-bit AtomicOp completer supported */
    uint32_t ccs128:1;      /* 128-bit CAS completer supported */
    uint32_t nprpr:1;       /* no RO-enabled PR-PR passing */
    uint32_t ltrs:1;        /* LTR mechanism supported */
    uint32_t tphcs:2;       /* TPH completer supported */
    uint32_t ln:2;          /* LN system CLS */
    uint32_t tcs:1;         /* 10-bit tag completer supported */
    uint32_t trs:1;         /* 10-bit tag requester supported */
    uint32_t obffs:2;       /* OBFF supported */
    uint32_t effs:1;        /* extended fmt field supported */
    uint32_t eetps:1;       /* end-end TLP prefix supported */
    uint32_t meetp:2;       /* max end-end TLP prefixes */
    uint32_t eprs:2;        /* emergency power reduction supported */
    uint32_t eprir:1;       /* emergency power reduction init required */
    uint32_t res1:1;
    uint32_t dmwcs:1;       /* DMWr completer supported */
    uint32_t dmwls:2;       /* DMWr lengths supported */
    uint32_t frss:1;        /* FRS supported */
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxdcap2) == 0x4, "struct pxdcap2 must be 4 bytes");

/* Device Control 2 register. */
union pxdc2 {
    uint16_t raw;
    struct {
        uint32_t comp_timeout:4;
        uint32_t comp_timout_dis:1;
        uint32_t ari:1;
        uint32_t atomic_req:1;
        uint32_t atomic_egress_block:1;
        uint32_t ido_req_en:1;
        uint32_t ido_cmp_en:1;
        uint32_t ltr_en:1;
        uint32_t obff_en:2;
        uint32_t end_end_tlp_prefix_block:1;
    } __attribute__((packed));
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(union pxdc2) == 0x2, "union pxdc2 must be 2 bytes");

struct pxds2 {
    uint16_t stuff:16;      /* Device Status 2 */
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxds2) == 0x2, "struct pxds2 must be 2 bytes");

struct pxlcap2 {
    uint32_t stuff:32;      /* Link Capabilities 2 */
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxlcap2) == 0x4, "struct pxlcap2 must be 4 bytes");

struct pxlc2 {
    uint16_t stuff:16;      /* Link Control 2 */
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxlc2) == 0x2, "struct pxlc2 must be 2 bytes");

struct pxls2 {
    uint16_t stuff:16;      /* Link Status 2 */
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxls2) == 0x2, "struct pxls2 must be 2 bytes");

struct pxscap2 {
    uint32_t stuff:32;      /* Slot Capabilities 2 */
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxscap2) == 0x4, "struct pxscap2 must be 4 bytes");

struct pxsc2 {
    uint16_t stuff:16;      /* Slot Control 2 */
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxsc2) == 0x2, "struct pxsc2 must be 2 bytes");

struct pxss2 {
    uint16_t stuff:16;      /* Slot Status 2 */
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxss2) == 0x2, "struct pxss2 must be 2 bytes");

/* Full PCI Express capability (v2 layout, 60 bytes). */
struct pxcap {
    struct cap_hdr hdr;
    struct pxcaps pxcaps;
    struct pxdcap pxdcap;
    union pxdc pxdc;
    struct pxds pxds;
    struct pxlcap pxlcap;
    union pxlc pxlc;
    struct pxls pxls;
    struct pxscap pxscap;
    struct pxsc pxsc;
    struct pxss pxss;
    struct pxrc pxrc;
    struct pxrcap pxrcap;
    struct pxrs pxrs;
    struct pxdcap2 pxdcap2;
    union pxdc2 pxdc2;
    struct pxds2 pxds2;
    struct pxlcap2 pxlcap2;
    struct pxlc2 pxlc2;
    struct pxls2 pxls2;
    struct pxscap2 pxscap2;
    struct pxsc2 pxsc2;
    struct pxss2 pxss2;
} __attribute__((packed));

/* Size of struct pxcap. */
#define VFIO_USER_PCI_CAP_EXP_SIZEOF (0x3c)

VFU_STATIC_ASSERT(sizeof(struct pxcap) == VFIO_USER_PCI_CAP_EXP_SIZEOF,
                  "struct pxcap must be VFIO_USER_PCI_CAP_EXP_SIZEOF bytes");
VFU_STATIC_ASSERT(offsetof(struct pxcap, hdr) == 0,
                  "pxcap.hdr must be at offset 0");

#ifdef __cplusplus
}
#endif

#endif /* LIB_VFIO_USER_PCI_CAPS_PX_H */
