;; The consumer: finds the mailbox, vm_reads its page into a new region of its own address
;; space (the kernel picks the address and grows the memory), checksums the copy, then
;; tries to overwrite the sealed page and is refused.
;; Prints: the kern_return of vm_read, the checksum of the copy (equal to the producer's),
;; and the kern_return of the refused vm_write (2, KERN_PROTECTION_FAILURE).
(module
  (import "mach" "bootstrap_look_up" (func $look_up (param i32 i32 i32) (result i32)))
  (import "mach" "vm_read" (func $vm_read (param i32 i32 i32 i32 i32) (result i32)))
  (import "mach" "vm_write" (func $vm_write (param i32 i32 i32 i32) (result i32)))
  (memory 1)
  (data (i32.const 16) "mailbox")

  ;; FNV-1a over the 64 KiB page at $addr.
  (func $checksum (param $addr i32) (result i32)
    (local $h i32) (local $end i32)
    (local.set $h (i32.const 0x811c9dc5))
    (local.set $end (i32.add (local.get $addr) (i32.const 65536)))
    (loop $next
      (local.set $h (i32.mul (i32.xor (local.get $h) (i32.load8_u (local.get $addr)))
                             (i32.const 16777619)))
      (local.set $addr (i32.add (local.get $addr) (i32.const 1)))
      (br_if $next (i32.lt_u (local.get $addr) (local.get $end))))
    (local.get $h))

  (func (export "_start") (result i32 i32 i32)
    (local $kr i32) (local $port i32) (local $data i32)
    (local.set $kr (call $look_up (i32.const 16) (i32.const 7) (i32.const 0)))
    (if (local.get $kr) (then (return (local.get $kr) (i32.const 0) (i32.const 0))))
    (local.set $port (i32.load (i32.const 0)))
    ;; the new region's address lands at 4, its size at 8
    (local.set $kr (call $vm_read (local.get $port) (i32.const 65536) (i32.const 65536)
                                  (i32.const 4) (i32.const 8)))
    (if (local.get $kr) (then (return (local.get $kr) (i32.const 0) (i32.const 0))))
    (local.set $data (i32.load (i32.const 4)))
    (local.get $kr)
    (call $checksum (local.get $data))
    (call $vm_write (local.get $port) (i32.const 65536) (local.get $data) (i32.const 65536))))
