/* The types of the calls, all 32 bits on wasm32 (every parameter of the "mach"
 * imports is an i32; docs/spec.md section 9.1). */
#ifndef _MACH_MACH_TYPES_H_
#define _MACH_MACH_TYPES_H_

#include <mach/boolean.h>
#include <mach/kern_return.h>
#include <mach/vm_prot.h>

typedef unsigned int mach_port_t;             /* a port name in the caller's namespace */
typedef mach_port_t  task_t;
typedef mach_port_t  vm_task_t;
typedef unsigned int vm_offset_t;
typedef vm_offset_t  vm_address_t;
typedef unsigned int vm_size_t;
typedef unsigned int natural_t;
typedef natural_t    mach_msg_type_number_t;

#define MACH_PORT_NULL ((mach_port_t)0)

_Static_assert(sizeof(mach_port_t) == 4, "wasm32: 32-bit port names");
_Static_assert(sizeof(vm_address_t) == 4 && sizeof(vm_size_t) == 4, "wasm32: 32-bit addresses");
_Static_assert(sizeof(void *) == 4, "these headers are for wasm32");

#endif
