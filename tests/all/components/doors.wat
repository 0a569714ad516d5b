;; A component written by hand against wit/mach.wit's `vm` interface: each export makes one
;; call and returns its outcome as an s64, the value (0 for a call without one) on success,
;; or -(1 + the kern-error case index) on failure (invalid-address = -1, protection-failure = -2, no-space = -3,
;; invalid-argument = -4, ..., send-invalid-dest = -10, send-invalid-memory = -11). Results are
;; lowered at address 16 (the "result area", bytes 16..32): `region`'s record and `read`'s
;; list pointer and length stay there for the host to read. Lists the host returns go to
;; fresh pages at the end of the memory (a bump allocator that grows it).
(component
  (import "wasmach:mach/vm@0.1.0" (instance $vm
    (type $err-def (enum "invalid-address" "protection-failure" "no-space" "invalid-argument"
                         "failure" "resource-shortage" "invalid-name" "invalid-task"
                         "invalid-value" "send-invalid-dest" "send-invalid-memory"))
    (export "kern-error" (type $err (eq $err-def)))
    (type $prot-def (flags "read" "write" "execute"))
    (export "vm-prot" (type $prot (eq $prot-def)))
    (type $region-def (record (field "address" u32) (field "size" u32)
                              (field "protection" $prot) (field "max-protection" $prot)))
    (export "region" (type $region (eq $region-def)))
    (export "vm-allocate" (func (param "target" u32) (param "address" u32) (param "size" u32)
                                (param "anywhere" bool) (result (result u32 (error $err)))))
    (export "vm-write" (func (param "target" u32) (param "address" u32) (param "data" u32)
                             (param "count" u32) (result (result (error $err)))))
    (export "vm-protect" (func (param "target" u32) (param "address" u32) (param "size" u32)
                               (param "set-maximum" bool) (param "new-protection" $prot)
                               (result (result (error $err)))))
    (export "vm-read" (func (param "target" u32) (param "address" u32) (param "size" u32)
                            (result (result (list u8) (error $err)))))
    (export "vm-read-overwrite" (func (param "target" u32) (param "address" u32) (param "size" u32)
                                      (param "data" u32) (result (result u32 (error $err)))))
    (export "vm-copy" (func (param "target" u32) (param "source-address" u32) (param "count" u32)
                            (param "dest-address" u32) (result (result (error $err)))))
    (export "vm-region" (func (param "target" u32) (param "address" u32)
                              (result (result $region (error $err)))))
    (export "bootstrap-look-up" (func (param "name" (list u8)) (result (result u32 (error $err)))))
    (export "mach-task-self" (func (result u32)))))

  ;; The task's one memory, defined by its own core module as wit-component lays it out,
  ;; with the allocator for the lists the host returns: each list gets fresh pages at the
  ;; end of the memory (memory.grow(0) first, so that the size includes the kernel's growth).
  (core module $Memory
    (memory (export "memory") 1)
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $at i32)
      (drop (memory.grow (i32.const 0)))
      (local.set $at (i32.mul (memory.size) (i32.const 65536)))
      (if (i32.lt_s (memory.grow (i32.shr_u (i32.add (local.get 3) (i32.const 65535))
                                            (i32.const 16)))
                    (i32.const 0))
        (then unreachable))
      (local.get $at)))
  (core instance $memory (instantiate $Memory))
  (alias core export $memory "memory" (core memory $m))
  (alias core export $memory "realloc" (core func $realloc))

  (core func $allocate (canon lower (func $vm "vm-allocate") (memory $m)))
  (core func $write (canon lower (func $vm "vm-write") (memory $m)))
  (core func $protect (canon lower (func $vm "vm-protect") (memory $m)))
  (core func $read (canon lower (func $vm "vm-read") (memory $m) (realloc $realloc)))
  (core func $read-overwrite (canon lower (func $vm "vm-read-overwrite") (memory $m)))
  (core func $copy (canon lower (func $vm "vm-copy") (memory $m)))
  (core func $region (canon lower (func $vm "vm-region") (memory $m)))
  (core func $look-up (canon lower (func $vm "bootstrap-look-up") (memory $m)))
  (core func $self (canon lower (func $vm "mach-task-self")))

  (core module $Main
    (import "env" "memory" (memory 1))
    (import "vm" "allocate" (func $allocate (param i32 i32 i32 i32 i32)))
    (import "vm" "write" (func $write (param i32 i32 i32 i32 i32)))
    (import "vm" "protect" (func $protect (param i32 i32 i32 i32 i32 i32)))
    (import "vm" "read" (func $read (param i32 i32 i32 i32)))
    (import "vm" "read-overwrite" (func $read_overwrite (param i32 i32 i32 i32 i32)))
    (import "vm" "copy" (func $copy (param i32 i32 i32 i32 i32)))
    (import "vm" "region" (func $region (param i32 i32 i32)))
    (import "vm" "look-up" (func $look_up (param i32 i32 i32)))
    (import "vm" "self" (func $self (result i32)))
    (data (i32.const 100) "peer")

    ;; The outcome of a `result<u32, kern-error>` lowered at 16: the discriminant byte at
    ;; 16, the payload (the u32, or the error case as a byte) at 20 (aligned for the u32).
    (func $outcome (result i64)
      (if (result i64) (i32.load8_u (i32.const 16))
        (then (i64.sub (i64.const -1) (i64.extend_i32_u (i32.load8_u (i32.const 20)))))
        (else (i64.extend_i32_u (i32.load (i32.const 20))))))

    ;; The outcome of a `result<_, kern-error>` lowered at 16: the error case at 17.
    (func $status (result i64)
      (if (result i64) (i32.load8_u (i32.const 16))
        (then (i64.sub (i64.const -1) (i64.extend_i32_u (i32.load8_u (i32.const 17)))))
        (else (i64.const 0))))

    (func $peer (result i32)
      (call $look_up (i32.const 100) (i32.const 4) (i32.const 16))
      (i32.load (i32.const 20)))

    (func (export "allocate-self") (param $size i32) (result i64)
      (call $allocate (call $self) (i32.const 0) (local.get $size) (i32.const 1) (i32.const 16))
      (call $outcome))

    ;; memory.grow(0) makes the engine reload the size the host grew, then memory.fill
    ;; writes the range (a bulk instruction, bounds-checked against that size).
    (func (export "fill") (param $address i32) (param $len i32) (param $byte i32) (result i64)
      (drop (memory.grow (i32.const 0)))
      (memory.fill (local.get $address) (local.get $byte) (local.get $len))
      (i64.extend_i32_u (memory.size)))

    (func (export "store-byte") (param $address i32) (param $byte i32)
      (i32.store8 (local.get $address) (local.get $byte)))

    (func (export "write-peer") (param $address i32) (param $data i32) (param $count i32) (result i64)
      (call $write (call $peer) (local.get $address) (local.get $data) (local.get $count)
                   (i32.const 16))
      (call $status))

    (func (export "write-port") (param $port i32) (result i64)
      (call $write (local.get $port) (i32.const 0) (i32.const 0) (i32.const 65536) (i32.const 16))
      (call $status))

    (func (export "protect-peer") (param $address i32) (param $size i32) (param $max i32) (param $prot i32) (result i64)
      (call $protect (call $peer) (local.get $address) (local.get $size) (local.get $max)
                     (local.get $prot) (i32.const 16))
      (call $status))

    (func (export "look-up") (param $len i32) (result i64)
      (call $look_up (i32.const 100) (local.get $len) (i32.const 16))
      (call $outcome))

    ;; The name `[ptr, ptr + len)` of the memory.
    (func (export "look-up-at") (param $ptr i32) (param $len i32) (result i64)
      (call $look_up (local.get $ptr) (local.get $len) (i32.const 16))
      (call $outcome))

    (func (export "self-port") (result i64)
      (i64.extend_i32_u (call $self)))

    ;; The list's pointer on success (its length is at 24).
    (func (export "read") (param $target i32) (param $address i32) (param $size i32) (result i64)
      (call $read (local.get $target) (local.get $address) (local.get $size) (i32.const 16))
      (call $outcome))

    (func (export "read-overwrite") (param $target i32) (param $address i32) (param $size i32)
                                    (param $data i32) (result i64)
      (call $read_overwrite (local.get $target) (local.get $address) (local.get $size)
                            (local.get $data) (i32.const 16))
      (call $outcome))

    (func (export "copy") (param $target i32) (param $source i32) (param $count i32)
                          (param $dest i32) (result i64)
      (call $copy (local.get $target) (local.get $source) (local.get $count) (local.get $dest)
                  (i32.const 16))
      (call $status))

    ;; 0 on success, the record at 20: address, size (u32s), protection, max (a byte each).
    (func (export "region") (param $target i32) (param $address i32) (result i64)
      (call $region (local.get $target) (local.get $address) (i32.const 16))
      (if (result i64) (i32.load8_u (i32.const 16))
        (then (i64.sub (i64.const -1) (i64.extend_i32_u (i32.load8_u (i32.const 20)))))
        (else (i64.const 0)))))

  (core instance $main (instantiate $Main
    (with "env" (instance $memory))
    (with "vm" (instance
      (export "allocate" (func $allocate))
      (export "write" (func $write))
      (export "protect" (func $protect))
      (export "read" (func $read))
      (export "read-overwrite" (func $read-overwrite))
      (export "copy" (func $copy))
      (export "region" (func $region))
      (export "look-up" (func $look-up))
      (export "self" (func $self))))))

  (func (export "allocate-self") (param "size" u32) (result s64)
    (canon lift (core func $main "allocate-self")))
  (func (export "fill") (param "address" u32) (param "len" u32) (param "byte" u8) (result s64)
    (canon lift (core func $main "fill")))
  (func (export "store-byte") (param "address" u32) (param "byte" u8)
    (canon lift (core func $main "store-byte")))
  (func (export "write-peer") (param "address" u32) (param "data" u32) (param "count" u32) (result s64)
    (canon lift (core func $main "write-peer")))
  (func (export "write-port") (param "port" u32) (result s64)
    (canon lift (core func $main "write-port")))
  (func (export "protect-peer") (param "address" u32) (param "size" u32) (param "set-maximum" bool) (param "prot" u32) (result s64)
    (canon lift (core func $main "protect-peer")))
  (func (export "look-up") (param "len" u32) (result s64)
    (canon lift (core func $main "look-up")))
  (func (export "look-up-at") (param "ptr" u32) (param "len" u32) (result s64)
    (canon lift (core func $main "look-up-at")))
  (func (export "self-port") (result s64)
    (canon lift (core func $main "self-port")))
  (func (export "read") (param "target" u32) (param "address" u32) (param "size" u32) (result s64)
    (canon lift (core func $main "read")))
  (func (export "read-overwrite") (param "target" u32) (param "address" u32) (param "size" u32)
                                  (param "data" u32) (result s64)
    (canon lift (core func $main "read-overwrite")))
  (func (export "copy") (param "target" u32) (param "source" u32) (param "count" u32)
                        (param "dest" u32) (result s64)
    (canon lift (core func $main "copy")))
  (func (export "region") (param "target" u32) (param "address" u32) (result s64)
    (canon lift (core func $main "region"))))
