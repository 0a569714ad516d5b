;; The snapshot: takes a 64 MiB snapshot of the archive's records with one vm_read (with
;; virtual copies the pages are shared copy-on-write, so the call maps them and copies
;; nothing), then both sides write: the snapshot stamps the first word of each of its
;; pages, and it vm_writes zeros over the archive's first page. It checks that its copy
;; still holds the archive's records everywhere else (and its own stamps), and that the
;; archive's first page now reads zero.
;; Prints: the kern_return of vm_read, the pages checked and the mismatches (0).
(module
  (import "mach" "bootstrap_look_up" (func $look_up (param i32 i32 i32) (result i32)))
  (import "mach" "vm_read" (func $vm_read (param i32 i32 i32 i32 i32) (result i32)))
  (import "mach" "vm_write" (func $vm_write (param i32 i32 i32 i32) (result i32)))
  (import "mach" "vm_read_overwrite" (func $vm_read_overwrite (param i32 i32 i32 i32 i32) (result i32)))
  (memory 2)
  (data (i32.const 16) "archive")
  ;; 0: port, 4: data, 8: count, 12: out size; page 1: zeros, then a page read back

  (func (export "_start") (result i32 i32 i32)
    (local $kr i32) (local $port i32) (local $data i32) (local $page i32)
    (local $a i32) (local $bad i32) (local $want i32)
    (local.set $kr (call $look_up (i32.const 16) (i32.const 7) (i32.const 0)))
    (if (local.get $kr) (then (return (local.get $kr) (i32.const 0) (i32.const 0))))
    (local.set $port (i32.load (i32.const 0)))
    ;; the snapshot: 1024 pages from the archive's 65536, into a new region of ours
    (local.set $kr (call $vm_read (local.get $port) (i32.const 65536) (i32.const 0x4000000)
                                  (i32.const 4) (i32.const 8)))
    (if (local.get $kr) (then (return (local.get $kr) (i32.const 0) (i32.const 0))))
    (local.set $data (i32.load (i32.const 4)))
    ;; both sides write: our stamps, and zeros over the archive's first page
    (local.set $page (i32.const 0))
    (loop $stamp
      (i32.store (i32.add (local.get $data) (i32.mul (local.get $page) (i32.const 65536)))
                 (local.get $page))
      (local.set $page (i32.add (local.get $page) (i32.const 1)))
      (br_if $stamp (i32.lt_u (local.get $page) (i32.const 1024))))
    (drop (call $vm_write (local.get $port) (i32.const 65536) (i32.const 65536) (i32.const 65536)))
    ;; our copy: the stamp, then the archive's records, on every page (its words 1 and 2
    ;; and its last word: 4 loads a page)
    (local.set $page (i32.const 0))
    (loop $check
      (local.set $a (i32.add (local.get $data) (i32.mul (local.get $page) (i32.const 65536))))
      (if (i32.ne (i32.load (local.get $a)) (local.get $page))
        (then (local.set $bad (i32.add (local.get $bad) (i32.const 1)))))
      (local.set $want (i32.add (i32.const 65536) (i32.mul (local.get $page) (i32.const 65536))))
      (if (i32.ne (i32.load offset=4 (local.get $a))
                  (i32.mul (i32.add (local.get $want) (i32.const 4)) (i32.const 2654435761)))
        (then (local.set $bad (i32.add (local.get $bad) (i32.const 1)))))
      (if (i32.ne (i32.load offset=65532 (local.get $a))
                  (i32.mul (i32.add (local.get $want) (i32.const 65532)) (i32.const 2654435761)))
        (then (local.set $bad (i32.add (local.get $bad) (i32.const 1)))))
      (local.set $page (i32.add (local.get $page) (i32.const 1)))
      (br_if $check (i32.lt_u (local.get $page) (i32.const 1024))))
    ;; the archive's first page reads zero now
    (drop (call $vm_read_overwrite (local.get $port) (i32.const 65536) (i32.const 65536)
                                   (i32.const 65536) (i32.const 12)))
    (if (i32.ne (i32.load offset=4 (i32.const 65536)) (i32.const 0))
      (then (local.set $bad (i32.add (local.get $bad) (i32.const 1)))))
    (local.get $kr)
    (local.get $page)
    (local.get $bad)))
