/* The page: 64 KiB, the WebAssembly page (docs/spec.md section 1). */
#ifndef _MACH_VM_PARAM_H_
#define _MACH_VM_PARAM_H_

#include <mach/mach_types.h>

/* A constant here, not a variable the kernel fills in as in GNU Mach: an
 * expression of type vm_size_t, so `vm_page_size` reads as in the manual. */
#define vm_page_size  ((vm_size_t)65536)

#define trunc_page(x) ((vm_offset_t)(x) & ~(vm_page_size - 1))
#define round_page(x) (((vm_offset_t)(x) + (vm_page_size - 1)) & ~(vm_page_size - 1))

#endif
