;; The producer: finds the mailbox through the bootstrap, fills one page of its own memory
;; with a message, vm_writes it into the mailbox's page, then seals that page read-only
;; (current and maximum protection) so nobody can change it any more.
;; Prints: the kern_return of the last call and the FNV-1a checksum of the message.
(module
  (import "mach" "bootstrap_look_up" (func $look_up (param i32 i32 i32) (result i32)))
  (import "mach" "vm_write" (func $vm_write (param i32 i32 i32 i32) (result i32)))
  (import "mach" "vm_protect" (func $vm_protect (param i32 i32 i32 i32 i32) (result i32)))
  (memory 2)
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

  (func (export "_start") (result i32 i32)
    (local $kr i32) (local $port i32) (local $i i32)
    ;; our name for the mailbox lands at address 0
    (local.set $kr (call $look_up (i32.const 16) (i32.const 7) (i32.const 0)))
    (if (local.get $kr) (then (return (local.get $kr) (i32.const 0))))
    (local.set $port (i32.load (i32.const 0)))
    ;; the message: byte i of page 1 is i * 31 + 7
    (loop $fill
      (i32.store8 (i32.add (i32.const 65536) (local.get $i))
                  (i32.add (i32.mul (local.get $i) (i32.const 31)) (i32.const 7)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $fill (i32.lt_u (local.get $i) (i32.const 65536))))
    ;; one copy, from our page 1 into the mailbox's page at 65536
    (local.set $kr (call $vm_write (local.get $port) (i32.const 65536) (i32.const 65536) (i32.const 65536)))
    (if (local.get $kr) (then (return (local.get $kr) (i32.const 0))))
    ;; seal it: maximum protection READ (which also drops WRITE from the current one)
    (call $vm_protect (local.get $port) (i32.const 65536) (i32.const 65536) (i32.const 1) (i32.const 1))
    (call $checksum (i32.const 65536))))
