/* Mach's return codes, at the values wasmach returns them (runtime/src/kern.rs,
 * docs/spec.md section 2): GNU Mach's include/mach/kern_return.h and the two
 * message-level codes of include/mach/message.h. */
#ifndef _MACH_KERN_RETURN_H_
#define _MACH_KERN_RETURN_H_

typedef int kern_return_t;

#define KERN_SUCCESS              0
#define KERN_INVALID_ADDRESS      1  /* a page of the range is unallocated or past the address space */
#define KERN_PROTECTION_FAILURE   2  /* a page lacks the needed protection, or above the maximum */
#define KERN_NO_SPACE             3  /* no room, a fixed allocation over allocated pages, the quota, no region */
#define KERN_INVALID_ARGUMENT     4  /* misaligned, bad protection bits, wrapping range, bad pointer, bad name */
#define KERN_FAILURE              5  /* never returned by the runtime */
#define KERN_RESOURCE_SHORTAGE    6  /* mapping budget, failed mprotect, growing a running task */
#define KERN_INVALID_NAME         15 /* bootstrap_look_up: no live task under the name */
#define KERN_INVALID_TASK         16 /* never returned by the runtime */
#define KERN_INVALID_VALUE        18 /* never returned by the runtime */

#define MACH_SEND_INVALID_DEST    0x10000003 /* target port null, unknown or terminated */
#define MACH_SEND_INVALID_MEMORY  0x1000000c /* vm_write: the caller's buffer is not readable */

#endif
