#!/bin/sh
# The shared library exports exactly upstream's 34 functions, each declared
# in the public header at the start of a line, plus our own vfu_ext_*
# extensions, each declared in libvfio-user-ext.h beside it, and carries
# soname .so.0.
# usage: exported-symbols.sh LIBRARY HEADER
set -u
lib=$1
header=$2
expected="dma_sg_size vfu_addr_to_sgl vfu_attach_ctx vfu_create_ctx
vfu_create_ioeventfd vfu_destroy_ctx vfu_device_quiesced vfu_get_poll_fd
vfu_get_private vfu_irq_trigger vfu_log vfu_pci_add_capability
vfu_pci_find_capability vfu_pci_find_next_capability vfu_pci_get_config_space
vfu_pci_init vfu_pci_set_class vfu_pci_set_id vfu_realize_ctx vfu_run_ctx
vfu_setup_device_dma vfu_setup_device_migration_callbacks
vfu_setup_device_nr_irqs vfu_setup_device_quiesce_cb vfu_setup_device_reset_cb
vfu_setup_irq_state_callback vfu_setup_log vfu_setup_region vfu_sg_is_mappable
vfu_sgl_get vfu_sgl_mark_dirty vfu_sgl_put vfu_sgl_read vfu_sgl_write"
passed=0
failed=0
check() {
    if [ "$1" = ok ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $2"; fi
}

want=$(printf '%s\n' $expected | sort)
# Ours are the defined symbols that are not the C runtime's own (_init etc.).
defined=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^_' | sort)
have=$(printf '%s\n' $defined | grep -v '^vfu_ext_')
ours=$(printf '%s\n' $defined | grep '^vfu_ext_')
ext_header="$(dirname "$header")/libvfio-user-ext.h"
[ -n "$ours" ] && check ok || check fail "no vfu_ext_ extension is exported"
for name in $ours; do
    grep -q "[ *]$name(" "$ext_header" && check ok || check fail "$name is not declared in $ext_header"
done
[ "$(printf '%s\n' $want | wc -l)" -eq 34 ] && check ok || check fail "expected list is not 34 names"
if [ "$have" = "$want" ]; then check ok; else
    check fail "exported symbols differ:"; diff -u /dev/fd/3 /dev/fd/4 3<<E1 4<<E2
$want
E1
$have
E2
fi
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" {print $2}')
[ "$soname" = libvfio-user.so.0 ] && check ok || check fail "soname is '$soname'"
for name in $expected; do
    grep -q "^$name(" "$header" && check ok || check fail "$name does not start a line in the header"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
