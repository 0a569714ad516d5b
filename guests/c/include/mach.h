/* wasmach: Mach's VM calls for C guests, with the GNU Mach manual's names,
 * argument order and types. Each call is an import of module "mach"
 * (docs/spec.md sections 4 and 9.1); pointers are addresses in the caller's
 * own linear memory, out-values 32-bit little-endian.
 *
 * Every call (but mach_task_self) first checks its target port:
 * MACH_SEND_INVALID_DEST for a null, unknown or terminated one. A call that
 * fails changes nothing. A size (count) of 0 succeeds once the port has passed.
 *
 * Departures from the manual, all documented at the declaration:
 *   - vm_region has only address, size, protection and max_protection (no
 *     inheritance, shared, object_name, offset);
 *   - bootstrap_look_up takes (name pointer, name length, port pointer), with
 *     no bootstrap port; mach_bootstrap_look_up() below takes a C string;
 *   - vm_page_size is a constant (65536), not a variable;
 *   - vm_read_overwrite is XNU's, not GNU Mach's. */
#ifndef _MACH_H_
#define _MACH_H_

#include <mach/boolean.h>
#include <mach/kern_return.h>
#include <mach/vm_prot.h>
#include <mach/mach_types.h>
#include <mach/vm_param.h>

#define __MACH_IMPORT(name) __attribute__((import_module("mach"), import_name(#name)))

/* The caller's name for itself (0x103). Cannot fail. */
__MACH_IMPORT(mach_task_self)
mach_port_t mach_task_self(void);

/* Allocates round_page(size) bytes. anywhere: the lowest free run (first fit),
 * its start written to *address. Not anywhere: at trunc_page(*address), the
 * rounded start written back. New pages read as zero, protection
 * VM_PROT_DEFAULT, maximum VM_PROT_ALL.
 * KERN_NO_SPACE: no free run, allocated pages in the fixed range, the quota.
 * KERN_INVALID_ADDRESS: fixed range past the address space.
 * KERN_INVALID_ARGUMENT: address not 4 writable bytes of the caller.
 * KERN_RESOURCE_SHORTAGE: growing another task while it runs. */
__MACH_IMPORT(vm_allocate)
kern_return_t vm_allocate(mach_port_t target_task, vm_address_t *address,
                          vm_size_t size, boolean_t anywhere);

/* Frees every allocated page of [trunc_page(address), round_page(address + size));
 * unallocated pages are skipped. KERN_INVALID_ARGUMENT: the range wraps past 4 GiB. */
__MACH_IMPORT(vm_deallocate)
kern_return_t vm_deallocate(mach_port_t target_task, vm_address_t address,
                            vm_size_t size);

/* Sets the current protection (set_maximum false) or the maximum (true; the
 * current is masked by it) of the pages of the range.
 * KERN_INVALID_ARGUMENT: bits outside VM_PROT_ALL, a wrapping range.
 * KERN_INVALID_ADDRESS: an unallocated page in the range.
 * KERN_PROTECTION_FAILURE: new_protection above a page's maximum. */
__MACH_IMPORT(vm_protect)
kern_return_t vm_protect(mach_port_t target_task, vm_address_t address,
                         vm_size_t size, boolean_t set_maximum,
                         vm_prot_t new_protection);

/* Copies [address, address + size) of the target into a new region of the
 * caller (free it with vm_deallocate); its address goes to *data, size to
 * *data_count.
 * KERN_INVALID_ARGUMENT: address or size not page-aligned, a bad out-pointer.
 * KERN_INVALID_ADDRESS: an unallocated page (or past 4 GiB).
 * KERN_PROTECTION_FAILURE: a page without VM_PROT_READ.
 * KERN_NO_SPACE: no room in the caller. */
__MACH_IMPORT(vm_read)
kern_return_t vm_read(mach_port_t target_task, vm_address_t address,
                      vm_size_t size, vm_offset_t *data,
                      mach_msg_type_number_t *data_count);

/* XNU's vm_read into the caller's existing pages at data; size to *out_size.
 * KERN_INVALID_ARGUMENT: address, size or data not page-aligned, bad out_size.
 * KERN_INVALID_ADDRESS / KERN_PROTECTION_FAILURE: the target range (READ),
 * then the caller's [data, data + size) (WRITE). */
__MACH_IMPORT(vm_read_overwrite)
kern_return_t vm_read_overwrite(mach_port_t target_task, vm_address_t address,
                                vm_size_t size, vm_address_t data,
                                vm_size_t *out_size);

/* Copies the caller's [data, data + data_count) to address in the target.
 * MACH_SEND_INVALID_MEMORY: the caller's buffer not allocated and readable.
 * KERN_INVALID_ARGUMENT: address, data or data_count not page-aligned.
 * KERN_INVALID_ADDRESS: an unallocated target page (or past 4 GiB).
 * KERN_PROTECTION_FAILURE: a target page without VM_PROT_WRITE. */
__MACH_IMPORT(vm_write)
kern_return_t vm_write(mach_port_t target_task, vm_address_t address,
                       vm_offset_t data, mach_msg_type_number_t data_count);

/* Copies count bytes from source_address to dest_address inside the target;
 * overlapping ranges give memmove's result.
 * KERN_INVALID_ARGUMENT: any of the three not page-aligned.
 * KERN_INVALID_ADDRESS / KERN_PROTECTION_FAILURE: the whole source (READ),
 * then the whole destination (WRITE). */
__MACH_IMPORT(vm_copy)
kern_return_t vm_copy(mach_port_t target_task, vm_address_t source_address,
                      vm_size_t count, vm_address_t dest_address);

/* The region containing *address, or else the first above it: its start back
 * to *address, its size, current and maximum protection.
 * Departure: the manual's vm_region also has inheritance, shared, object_name
 * and offset out-values; the runtime has none of them, so this takes the four
 * it has, in the manual's order.
 * KERN_NO_SPACE: no region at or above *address.
 * KERN_INVALID_ARGUMENT: a bad pointer (address is checked before the look-up,
 * the others after). A 4 GiB region is reported as 0xFFFF0000 bytes. */
__MACH_IMPORT(vm_region)
kern_return_t vm_region(mach_port_t target_task, vm_address_t *address,
                        vm_size_t *size, vm_prot_t *protection,
                        vm_prot_t *max_protection);

/* Looks up the task the host registered under the UTF-8 name
 * [name, name + name_len) and writes the caller's name for it to *port.
 * Departure: Mach's is bootstrap_look_up(bootstrap_port, name_t name, &port)
 * with a NUL-terminated name; the runtime has no bootstrap port and takes the
 * name's length (no NUL). See mach_bootstrap_look_up() for a C string.
 * KERN_INVALID_ARGUMENT: name_len over 128, the name unreadable or not UTF-8,
 * then (after the look-up) port not 4 writable bytes.
 * KERN_INVALID_NAME: no live task registered under the name. */
__MACH_IMPORT(bootstrap_look_up)
kern_return_t bootstrap_look_up(const char *name, vm_size_t name_len,
                                mach_port_t *port);

/* bootstrap_look_up of a NUL-terminated name. */
static inline kern_return_t mach_bootstrap_look_up(const char *name, mach_port_t *port)
{
    vm_size_t len = 0;
    while (name[len] != '\0')
        len++;
    return bootstrap_look_up(name, len, port);
}

#undef __MACH_IMPORT

#endif
