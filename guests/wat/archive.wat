;; The archive: a task holding 64 MiB (1024 pages) of records that others snapshot.
;; Its `_start` grows its memory by 1024 pages (the new pages are allocated) and writes
;; every 4-byte word of them: word at address a holds a * 2654435761 (a distinct value
;; per word, so any byte out of place shows).
;; Prints: the address of the records and their size in pages.
(module
  (memory 1 65536)
  (func (export "_start") (result i32 i32)
    (local $a i32) (local $end i32)
    (local.set $a (i32.mul (memory.grow (i32.const 1024)) (i32.const 65536)))
    (local.set $end (i32.add (local.get $a) (i32.const 0x4000000)))
    (loop $next
      (i32.store (local.get $a) (i32.mul (local.get $a) (i32.const 2654435761)))
      (local.set $a (i32.add (local.get $a) (i32.const 4)))
      (br_if $next (i32.lt_u (local.get $a) (local.get $end))))
    (i32.const 65536)
    (i32.const 1024)))
