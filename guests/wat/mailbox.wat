;; The mailbox: a task that owns the page the producer fills and the consumer reads.
;; Its `_start` allocates that page in its own address space, first-fit: page 0 is its
;; initial memory, so the page lands at 65536 and the memory grows to hold it.
;; Prints: the kern_return of vm_allocate and the address it chose.
(module
  (import "mach" "mach_task_self" (func $task_self (result i32)))
  (import "mach" "vm_allocate" (func $vm_allocate (param i32 i32 i32 i32) (result i32)))
  (memory 1)
  (func (export "_start") (result i32 i32)
    (call $vm_allocate (call $task_self) (i32.const 0) (i32.const 65536) (i32.const 1))
    (i32.load (i32.const 0))))
