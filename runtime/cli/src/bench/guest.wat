;; The guest side of `wasmach bench` (the loops of benches/guest.wat that it needs): each
;; makes the same Mach call `n` times and stops at the first failing call, returning its
;; code (0: all passed). Page 0 is scratch (out-values); data starts at page 1.
(module
  (import "mach" "vm_read_overwrite" (func $vm_read_overwrite (param i32 i32 i32 i32 i32) (result i32)))
  (import "mach" "vm_write" (func $vm_write (param i32 i32 i32 i32) (result i32)))
  (import "mach" "vm_read" (func $vm_read (param i32 i32 i32 i32 i32) (result i32)))
  (import "mach" "vm_deallocate" (func $vm_deallocate (param i32 i32 i32) (result i32)))
  (import "mach" "vm_copy" (func $vm_copy (param i32 i32 i32 i32) (result i32)))
  (import "mach" "mach_task_self" (func $mach_task_self (result i32)))
  (memory 1)

  (func (export "read_overwrite") (param $port i32) (param $addr i32) (param $size i32) (param $data i32) (param $n i32) (result i32)
    (local $kr i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $kr (call $vm_read_overwrite (local.get $port) (local.get $addr) (local.get $size) (local.get $data) (i32.const 0)))
        (br_if $done (local.get $kr))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $kr))

  (func (export "write") (param $port i32) (param $addr i32) (param $data i32) (param $count i32) (param $n i32) (result i32)
    (local $kr i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $kr (call $vm_write (local.get $port) (local.get $addr) (local.get $data) (local.get $count)))
        (br_if $done (local.get $kr))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $kr))

  ;; vm_read into a new region, then vm_deallocate it.
  (func (export "read") (param $port i32) (param $addr i32) (param $size i32) (param $n i32) (result i32)
    (local $kr i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $kr (call $vm_read (local.get $port) (local.get $addr) (local.get $size) (i32.const 0) (i32.const 4)))
        (br_if $done (local.get $kr))
        (local.set $kr (call $vm_deallocate (call $mach_task_self) (i32.load (i32.const 0)) (local.get $size)))
        (br_if $done (local.get $kr))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $kr))

  (func (export "copy") (param $port i32) (param $src i32) (param $count i32) (param $dst i32) (param $n i32) (result i32)
    (local $kr i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $kr (call $vm_copy (local.get $port) (local.get $src) (local.get $count) (local.get $dst)))
        (br_if $done (local.get $kr))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $kr))

  ;; The guest's own copy: memory.copy of $len bytes, $n times.
  (func (export "memory_copy") (param $dst i32) (param $src i32) (param $len i32) (param $n i32) (result i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (memory.copy (local.get $dst) (local.get $src) (local.get $len))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (i32.const 0)))
