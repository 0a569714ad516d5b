//! Concurrency (docs/spec.md §6) and hostile guests (docs/spec.md §4 "Task lifecycle": a trapping guest
//! harms no other task).
//!
//! Every multi-threaded test arms a watchdog that aborts the process if the workers have
//! not finished within 60 s, so that a deadlock fails the run instead of hanging it.
//!
//! How the mailbox test avoids the race docs/spec.md §6 documents (bytes copied out of a task that
//! is *running* may mix old and new values): the mailbox tasks never run guest code. Every
//! byte of a mailbox is written by the kernel (a `vm_write` by a writer task), which holds
//! the mailbox's map lock for the whole copy, and every read of a mailbox holds the same
//! lock. So no torn page is allowed at all: every page a reader sees must be either the
//! untouched zero page or one whole page of one writer.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use wasmach::{
    KernReturn, PortName, Runtime, RuntimeOptions, Task, TaskOptions, VM_PAGE_SIZE, VmProt,
};
use wasmtime::Trap;

use crate::common::*;

const P: u32 = VM_PAGE_SIZE;
const WORDS: usize = (VM_PAGE_SIZE / 4) as usize;

// ---------------------------------------------------------------------------------------
// Watchdog
// ---------------------------------------------------------------------------------------

/// Aborts the process if it is not dropped within `secs` seconds. Dropping it (also while
/// unwinding from a failed assertion) disarms it.
struct Watchdog {
    _disarm: mpsc::Sender<()>,
}

fn watchdog(what: &'static str, secs: u64) -> Watchdog {
    let (tx, rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(secs)) {
            eprintln!("watchdog: `{what}` did not finish within {secs} s (deadlock?); aborting");
            std::process::abort();
        }
    });
    Watchdog { _disarm: tx }
}

// ---------------------------------------------------------------------------------------
// Mailbox pages: a header, a body derived from the header, and a checksum.
// ---------------------------------------------------------------------------------------

const MAGIC: u32 = 0x4D42_4F58; // "MBOX"
const MAILBOXES: u32 = 4;
const HOST_WRITERS: u32 = 4;
const GUEST_WRITERS: u32 = 2;
/// Writers 0..4 are driven by the host, 4..6 are guests; each owns page `writer` of every
/// mailbox, and writes its sequence number `seq` into mailbox `seq % MAILBOXES`.
const WRITERS: u32 = HOST_WRITERS + GUEST_WRITERS;
/// The most writes a writer makes; writers stop earlier, when the readers are done.
const MAX_WRITES: u32 = 1 << 20;

fn body_word(writer: u32, mailbox: u32, seq: u32, i: u32) -> u32 {
    seq.wrapping_mul(0x9E37_79B1) ^ i.wrapping_mul(0x85EB_CA77) ^ (writer << 24) ^ (mailbox << 16)
}

fn checksum(words: &[u32]) -> u32 {
    words[..WORDS - 1]
        .iter()
        .enumerate()
        .fold(0u32, |sum, (i, &w)| {
            sum.wrapping_add(w.wrapping_mul(2 * i as u32 + 1))
        })
}

/// The page writer `writer` sends to `mailbox` as its transfer number `seq`.
fn mail_page(writer: u32, mailbox: u32, seq: u32) -> Vec<u8> {
    let mut words = vec![0u32; WORDS];
    words[..4].copy_from_slice(&[MAGIC, writer, mailbox, seq]);
    for (i, w) in words.iter_mut().enumerate().take(WORDS - 1).skip(4) {
        *w = body_word(writer, mailbox, seq, i as u32);
    }
    words[WORDS - 1] = checksum(&words);
    let mut bytes = Vec::with_capacity(P as usize);
    for w in words {
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    bytes
}

/// What a reader found in page `writer` of `mailbox`: `Ok(None)` for the never-written zero
/// page, `Ok(Some(seq))` for a whole, valid page of that writer, `Err` for anything else (a
/// torn or misplaced page).
fn check_mail(bytes: &[u8], writer: u32, mailbox: u32) -> Result<Option<u32>, String> {
    if bytes.len() != P as usize {
        return Err(format!("{} bytes", bytes.len()));
    }
    if bytes.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    let words: Vec<u32> = bytes
        .chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    if words[WORDS - 1] != checksum(&words) {
        return Err(format!("bad checksum, header {:x?}", &words[..4]));
    }
    let seq = words[3];
    if words[..3] != [MAGIC, writer, mailbox] || seq % MAILBOXES != mailbox {
        return Err(format!("misplaced page, header {:x?}", &words[..4]));
    }
    if bytes != mail_page(writer, mailbox, seq) {
        return Err(format!("body does not match header {:x?}", &words[..4]));
    }
    Ok(Some(seq))
}

/// WAT functions building and checking mail pages exactly as `mail_page` / `check_mail`.
const MAIL_WAT: &str = r#"
  (func $body (param $w i32) (param $m i32) (param $seq i32) (param $i i32) (result i32)
    (i32.xor
      (i32.xor (i32.mul (local.get $seq) (i32.const 0x9E3779B1))
               (i32.mul (local.get $i) (i32.const 0x85EBCA77)))
      (i32.xor (i32.shl (local.get $w) (i32.const 24)) (i32.shl (local.get $m) (i32.const 16)))))
  (func $checksum (param $p i32) (result i32)
    (local $i i32) (local $sum i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (i32.const 16383)))
      (local.set $sum (i32.add (local.get $sum)
        (i32.mul (i32.load (i32.add (local.get $p) (i32.shl (local.get $i) (i32.const 2))))
                 (i32.add (i32.shl (local.get $i) (i32.const 1)) (i32.const 1)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $sum))
  (func $build (param $p i32) (param $w i32) (param $m i32) (param $seq i32)
    (local $i i32)
    (i32.store (local.get $p) (i32.const 0x4D424F58))
    (i32.store offset=4 (local.get $p) (local.get $w))
    (i32.store offset=8 (local.get $p) (local.get $m))
    (i32.store offset=12 (local.get $p) (local.get $seq))
    (local.set $i (i32.const 4))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (i32.const 16383)))
      (i32.store (i32.add (local.get $p) (i32.shl (local.get $i) (i32.const 2)))
        (call $body (local.get $w) (local.get $m) (local.get $seq) (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (i32.store offset=65532 (local.get $p) (call $checksum (local.get $p))))
  ;; 0: the zero page; 1: a whole page of writer $w for mailbox $m; 2: anything else.
  (func $check (param $p i32) (param $w i32) (param $m i32) (result i32)
    (local $i i32) (local $seq i32)
    (if (i32.eqz (i32.load (local.get $p))) (then
      (block $done (loop $next
        (br_if $done (i32.ge_u (local.get $i) (i32.const 65536)))
        (if (i32.load (i32.add (local.get $p) (local.get $i))) (then (return (i32.const 2))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $next)))
      (return (i32.const 0))))
    (if (i32.ne (i32.load (local.get $p)) (i32.const 0x4D424F58)) (then (return (i32.const 2))))
    (if (i32.ne (i32.load offset=4 (local.get $p)) (local.get $w)) (then (return (i32.const 2))))
    (if (i32.ne (i32.load offset=8 (local.get $p)) (local.get $m)) (then (return (i32.const 2))))
    (local.set $seq (i32.load offset=12 (local.get $p)))
    (if (i32.ne (i32.rem_u (local.get $seq) (i32.const 4)) (local.get $m))
      (then (return (i32.const 2))))
    (local.set $i (i32.const 4))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (i32.const 16383)))
      (if (i32.ne (i32.load (i32.add (local.get $p) (i32.shl (local.get $i) (i32.const 2))))
                  (call $body (local.get $w) (local.get $m) (local.get $seq) (local.get $i)))
        (then (return (i32.const 2))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (if (i32.ne (i32.load offset=65532 (local.get $p)) (call $checksum (local.get $p)))
      (then (return (i32.const 2))))
    (i32.const 1))
  ;; Looks up "mbox0".."mbox3" (at 64) and stores their names at 0, 4, 8, 12.
  (data (i32.const 64) "mbox0mbox1mbox2mbox3")
  (func $look_up_all (result i32)
    (local $m i32) (local $r i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $m) (i32.const 4)))
      (local.set $r (call $bootstrap_look_up
        (i32.add (i32.const 64) (i32.mul (local.get $m) (i32.const 5))) (i32.const 5)
        (i32.shl (local.get $m) (i32.const 2))))
      (if (local.get $r) (then (return (local.get $r))))
      (local.set $m (i32.add (local.get $m) (i32.const 1)))
      (br $next)))
    (i32.const 0))
"#;

/// A guest writer: builds each page in its page 1 and `vm_write`s it to a mailbox it looked
/// up, until `$n` writes are done or the host sets the word at page 2 (the host writes that
/// page while the guest runs; the guest polls it). Returns 0, or the first failing code;
/// `written()` is the number of writes done.
fn guest_writer_wat() -> String {
    guest(
        "(memory 3)",
        &format!(
            r#"{MAIL_WAT}
  (global $written (mut i32) (i32.const 0))
  (func (export "written") (result i32) (global.get $written))
  (func (export "write_loop") (param $w i32) (param $n i32) (result i32)
    (local $seq i32) (local $m i32) (local $r i32)
    (local.set $r (call $look_up_all))
    (if (local.get $r) (then (return (local.get $r))))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $seq) (local.get $n)))
      (br_if $done (i32.load (i32.const 131072)))
      (local.set $m (i32.rem_u (local.get $seq) (i32.const 4)))
      (call $build (i32.const 65536) (local.get $w) (local.get $m) (local.get $seq))
      (local.set $r (call $vm_write (i32.load (i32.shl (local.get $m) (i32.const 2)))
        (i32.mul (local.get $w) (i32.const 65536)) (i32.const 65536) (i32.const 65536)))
      (if (local.get $r) (then (return (local.get $r))))
      (local.set $seq (i32.add (local.get $seq) (i32.const 1)))
      (global.set $written (local.get $seq))
      (br $next)))
    (i32.const 0))"#
        ),
    )
}

/// A guest reader: `vm_read_overwrite`s every page of every mailbox into its page 1, `rounds`
/// times, and checks each copy (and that each writer's sequence numbers never go back).
/// Returns 0, or the first failing code (-1: a wrong out-size). `bad()` counts bad pages,
/// `seen()` the whole written pages seen.
fn guest_reader_wat() -> String {
    guest(
        "(memory 2)",
        &format!(
            r#"{MAIL_WAT}
  (global $bad (mut i32) (i32.const 0))
  (global $seen (mut i32) (i32.const 0))
  (func (export "bad") (result i32) (global.get $bad))
  (func (export "seen") (result i32) (global.get $seen))
  (func (export "read_loop") (param $rounds i32) (param $writers i32) (result i32)
    (local $r i32) (local $m i32) (local $w i32) (local $code i32) (local $c i32)
    (local $last i32) (local $slot i32)
    (local.set $code (call $look_up_all))
    (if (local.get $code) (then (return (local.get $code))))
    (block $done (loop $round
      (br_if $done (i32.ge_u (local.get $r) (local.get $rounds)))
      (local.set $m (i32.const 0))
      (block $mdone (loop $mail
        (br_if $mdone (i32.ge_u (local.get $m) (i32.const 4)))
        (local.set $w (i32.const 0))
        (block $wdone (loop $writer
          (br_if $wdone (i32.ge_u (local.get $w) (local.get $writers)))
          (i32.store (i32.const 16) (i32.const 0))
          (local.set $code (call $vm_read_overwrite (i32.load (i32.shl (local.get $m) (i32.const 2)))
            (i32.mul (local.get $w) (i32.const 65536)) (i32.const 65536) (i32.const 65536)
            (i32.const 16)))
          (if (local.get $code) (then (return (local.get $code))))
          (if (i32.ne (i32.load (i32.const 16)) (i32.const 65536)) (then (return (i32.const -1))))
          (local.set $c (call $check (i32.const 65536) (local.get $w) (local.get $m)))
          (if (i32.eq (local.get $c) (i32.const 2))
            (then (global.set $bad (i32.add (global.get $bad) (i32.const 1)))))
          (if (i32.eq (local.get $c) (i32.const 1)) (then
            (global.set $seen (i32.add (global.get $seen) (i32.const 1)))
            ;; the last sequence number + 1 seen for (m, w), at 256 + (m * 16 + w) * 4
            (local.set $slot (i32.add (i32.const 256)
              (i32.shl (i32.add (i32.shl (local.get $m) (i32.const 4)) (local.get $w)) (i32.const 2))))
            (local.set $last (i32.load (local.get $slot)))
            (if (i32.lt_u (i32.add (i32.load (i32.const 65548)) (i32.const 1)) (local.get $last))
              (then (global.set $bad (i32.add (global.get $bad) (i32.const 1)))))
            (i32.store (local.get $slot) (i32.add (i32.load (i32.const 65548)) (i32.const 1)))))
          (local.set $w (i32.add (local.get $w) (i32.const 1)))
          (br $writer)))
        (local.set $m (i32.add (local.get $m) (i32.const 1)))
        (br $mail)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $round)))
    (i32.const 0))"#
        ),
    )
}

/// A tiny deterministic generator for the readers' choices.
fn next(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *state >> 33
}

/// Stops the mailbox writers when dropped: the host writers see `stop`, the guest writers
/// poll the word at their page 2, which the host writes while they run.
struct StopWriters<'a> {
    stop: &'a AtomicBool,
    guests: &'a [Task],
}

impl Drop for StopWriters<'_> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let mut flag = vec![0u8; P as usize];
        flag[0] = 1;
        for task in self.guests {
            task.vm_write(2 * P, &flag).expect("stop flag");
        }
    }
}

/// Host reads per host reader, and rounds (over every page of every mailbox) per guest reader.
const HOST_READS: u32 = 150;
const GUEST_ROUNDS: u32 = 6;

/// `max_seen[m][w]`: the highest sequence number a reader saw in page `w` of mailbox `m`.
type MaxSeen = Vec<Vec<Option<u32>>>;

/// docs/spec.md §6: tasks on different threads transfer pages to and from shared mailbox tasks with
/// cross-task `vm_write` / `vm_read_overwrite`, from the host (`Task::mach`) and from
/// running guests; the writers keep writing until every reader is done. Afterwards every
/// call succeeded, every mailbox slot holds its writer's last transfer to it, no reader ever
/// saw a torn or misplaced page or a writer's sequence number going backwards, and no
/// reader saw a transfer its writer did not make.
#[test]
fn mailbox_transfers_between_threads_are_whole_and_all_accounted_for() {
    let _dog = watchdog("mailbox_transfers", 60);
    let rt = runtime();
    let mailboxes: Vec<Task> = (0..MAILBOXES)
        .map(|m| {
            let t = rt
                .spawn_bytes(format!("(module (memory {WRITERS}))"))
                .expect("mailbox");
            rt.register(&format!("mbox{m}"), &t);
            t
        })
        .collect();
    let plain = rt.compile("(module (memory 2))").expect("compile");
    let host_writers: Vec<Task> = (0..HOST_WRITERS)
        .map(|_| rt.spawn(&plain).expect("writer"))
        .collect();
    let host_readers: Vec<Task> = (0..4).map(|_| rt.spawn(&plain).expect("reader")).collect();
    let guest_writers: Vec<Task> = (0..GUEST_WRITERS)
        .map(|_| rt.spawn_bytes(guest_writer_wat()).expect("guest writer"))
        .collect();
    let guest_readers: Vec<Task> = (0..2)
        .map(|_| rt.spawn_bytes(guest_reader_wat()).expect("guest reader"))
        .collect();
    let ports =
        |task: &Task| -> Vec<PortName> { mailboxes.iter().map(|m| task.insert_port(m)).collect() };
    let stop = AtomicBool::new(false);

    let (written, seen): (Vec<u32>, Vec<MaxSeen>) = thread::scope(|s| {
        let stop = &stop;
        // Stops the writers when the readers are done, or when a reader's assertion fails
        // (so that the scope can join the writers and report the failure).
        let stopper = StopWriters {
            stop,
            guests: &guest_writers,
        };
        let mut writers = Vec::new();
        for (w, task) in host_writers.iter().enumerate() {
            let ports = ports(task);
            writers.push(s.spawn(move || {
                let w = w as u32;
                let mut seq = 0;
                while seq < MAX_WRITES && !stop.load(Ordering::SeqCst) {
                    let m = seq % MAILBOXES;
                    task.vm_write(0, &mail_page(w, m, seq))
                        .expect("fill own page");
                    assert_eq!(
                        task.mach().vm_write(ports[m as usize], w * P, 0, P),
                        Ok(()),
                        "host writer {w} transfer {seq}"
                    );
                    seq += 1;
                }
                seq
            }));
        }
        for (g, task) in guest_writers.iter().enumerate() {
            writers.push(s.spawn(move || {
                let w = HOST_WRITERS + g as u32;
                let code: i32 = task
                    .call("write_loop", (w as i32, MAX_WRITES as i32))
                    .expect("guest writer runs");
                assert_eq!(code, 0, "guest writer {w}: first failing code");
                task.call::<(), i32>("written", ()).expect("written") as u32
            }));
        }
        let mut readers = Vec::new();
        for (r, task) in host_readers.iter().enumerate() {
            let ports = ports(task);
            readers.push(s.spawn(move || {
                let mut rng = 0x1234_5678 + r as u64;
                let mut max: MaxSeen = vec![vec![None; WRITERS as usize]; MAILBOXES as usize];
                for _ in 0..HOST_READS {
                    let m = (next(&mut rng) % u64::from(MAILBOXES)) as usize;
                    let w = (next(&mut rng) % u64::from(WRITERS)) as u32;
                    assert_eq!(
                        task.mach().vm_read_overwrite(ports[m], w * P, P, P),
                        Ok(P),
                        "host reader {r}"
                    );
                    let copy = task.vm_read(P, P).expect("read own copy");
                    let seen = check_mail(&copy, w, m as u32)
                        .unwrap_or_else(|e| panic!("reader {r}, mailbox {m} page {w}: {e}"));
                    let prev = max[m][w as usize];
                    assert!(
                        seen >= prev,
                        "reader {r}: mailbox {m} page {w} went back from {prev:?} to {seen:?}"
                    );
                    max[m][w as usize] = seen;
                }
                max
            }));
        }
        for (g, task) in guest_readers.iter().enumerate() {
            readers.push(s.spawn(move || {
                let code: i32 = task
                    .call("read_loop", (GUEST_ROUNDS as i32, WRITERS as i32))
                    .expect("guest reader runs");
                assert_eq!(code, 0, "guest reader {g}: first failing code");
                let bad: i32 = task.call("bad", ()).expect("bad");
                assert_eq!(bad, 0, "guest reader {g}: torn, misplaced or older pages");
                // The guest keeps `1 + the last sequence number` of (m, w) at 256 + (m*16 + w)*4.
                let page = task.vm_read(0, P).expect("guest reader memory");
                (0..MAILBOXES as usize)
                    .map(|m| {
                        (0..WRITERS as usize)
                            .map(|w| {
                                let at = 256 + (m * 16 + w) * 4;
                                let v = u32::from_le_bytes(page[at..at + 4].try_into().unwrap());
                                v.checked_sub(1)
                            })
                            .collect()
                    })
                    .collect()
            }));
        }
        let seen: Vec<MaxSeen> = readers.into_iter().map(|h| h.join().unwrap()).collect();
        drop(stopper);
        (
            writers.into_iter().map(|h| h.join().unwrap()).collect(),
            seen,
        )
    });

    for (m, mailbox) in mailboxes.iter().enumerate() {
        let m = m as u32;
        for w in 0..WRITERS {
            let count = written[w as usize];
            // Every slot holds the last transfer its writer sent to it (or was never written).
            let last = (0..count).rev().find(|s| s % MAILBOXES == m);
            let bytes = mailbox.vm_read(w * P, P).expect("final read");
            assert_eq!(
                check_mail(&bytes, w, m),
                Ok(last),
                "final content of mailbox {m} page {w} after {count} writes"
            );
            // No reader saw a transfer that was not made.
            for (r, max) in seen.iter().enumerate() {
                let saw = max[m as usize][w as usize];
                assert!(
                    saw <= last,
                    "reader {r} saw transfer {saw:?} in mailbox {m} page {w}; last was {last:?}"
                );
            }
        }
        // The mailboxes' maps never changed.
        assert_eq!(mailbox.regions().len(), 1);
        assert_eq!(mailbox.regions()[0].size, u64::from(WRITERS * P));
    }
}

// ---------------------------------------------------------------------------------------
// vm_protect racing with readers and writers
// ---------------------------------------------------------------------------------------

/// A guest that reads page 1 of the task "target" into its page 1, `n` times, and compares
/// it with the reference copy in its page 2. Returns the number of calls that gave anything
/// but 0 (then the bytes must match) or 2 (then its page 1 must still hold the sentinel it
/// wrote, 0xA5A5A5A5 in every word).
fn racing_guest_wat() -> String {
    guest(
        "(memory 4)",
        r#"
  (data (i32.const 32) "target")
  (func $fill (param $p i32) (param $v i32)
    (local $i i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (i32.const 65536)))
      (i32.store (i32.add (local.get $p) (local.get $i)) (local.get $v))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $next))))
  ;; whether the pages at $a and $b are equal
  (func $same (param $a i32) (param $b i32) (result i32)
    (local $i i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (i32.const 65536)))
      (if (i64.ne (i64.load (i32.add (local.get $a) (local.get $i)))
                  (i64.load (i32.add (local.get $b) (local.get $i))))
        (then (return (i32.const 0))))
      (local.set $i (i32.add (local.get $i) (i32.const 8)))
      (br $next)))
    (i32.const 1))
  (func (export "race") (param $n i32) (result i32)
    (local $k i32) (local $code i32) (local $wrong i32)
    (if (call $bootstrap_look_up (i32.const 32) (i32.const 6) (i32.const 0))
      (then (return (i32.const -1))))
    (call $fill (i32.const 196608) (i32.const 0xA5A5A5A5))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $k) (local.get $n)))
      (call $fill (i32.const 65536) (i32.const 0xA5A5A5A5))
      (local.set $code (call $vm_read_overwrite (i32.load (i32.const 0)) (i32.const 65536)
        (i32.const 65536) (i32.const 65536) (i32.const 8)))
      (if (i32.eqz (local.get $code)) (then
        (if (i32.eqz (call $same (i32.const 65536) (i32.const 131072)))
          (then (local.set $wrong (i32.add (local.get $wrong) (i32.const 1)))))))
      (if (i32.eq (local.get $code) (i32.const 2)) (then
        (if (i32.eqz (call $same (i32.const 65536) (i32.const 196608)))
          (then (local.set $wrong (i32.add (local.get $wrong) (i32.const 1)))))))
      (if (i32.and (i32.ne (local.get $code) (i32.const 0)) (i32.ne (local.get $code) (i32.const 2)))
        (then (local.set $wrong (i32.add (local.get $wrong) (i32.const 1)))))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br $next)))
    (local.get $wrong))
"#,
    )
}

/// docs/spec.md §3 rule 2 and §6: while one thread keeps changing the protection of a page, readers
/// on other threads (host `vm_read`, cross-task `vm_read_overwrite` and `vm_read`, a guest's
/// `vm_read_overwrite`) and writers (host and cross-task `vm_write` of the same bytes) get
/// either success with exactly the page's bytes or `KERN_PROTECTION_FAILURE` with nothing
/// changed, never another code and never a crash.
#[test]
fn vm_protect_racing_with_reads_and_writes_gives_bytes_or_protection_failure() {
    let _dog = watchdog("vm_protect_racing", 60);
    let rt = runtime();
    let target = rt.spawn_bytes("(module (memory 3))").expect("target");
    rt.register("target", &target);
    let expected = pattern(77, P as usize);
    target.vm_write(P, &expected).expect("fill");
    let plain = rt.compile("(module (memory 2 4))").expect("compile");
    let (r1, r2, w1) = (
        rt.spawn(&plain).unwrap(),
        rt.spawn(&plain).unwrap(),
        rt.spawn(&plain).unwrap(),
    );
    w1.vm_write(P, &expected).expect("fill writer");
    let racer = rt.spawn_bytes(racing_guest_wat()).expect("racing guest");
    racer.vm_write(2 * P, &expected).expect("reference copy");
    let (p1, p2, pw) = (
        r1.insert_port(&target),
        r2.insert_port(&target),
        w1.insert_port(&target),
    );
    let r2_map = r2.regions();
    let sentinel = vec![0xA5u8; P as usize];
    let done = AtomicBool::new(false);
    // Whether each reader (host vm_read, cross vm_read_overwrite, cross vm_read) has seen
    // the page readable and unreadable: the protection changes keep going until all have,
    // so the race is shown to have happened.
    let seen: [[AtomicBool; 2]; 3] = Default::default();
    let saw = |reader: usize, ok: bool| seen[reader][usize::from(ok)].store(true, Ordering::SeqCst);
    let outcomes = Mutex::new(Vec::<String>::new());
    let note = |what: &str, r: Result<(), KernReturn>| {
        if let Err(e) = r
            && e != KernReturn::ProtectionFailure
        {
            outcomes.lock().unwrap().push(format!("{what}: {e}"));
        }
    };

    thread::scope(|s| {
        s.spawn(|| {
            let cycle = [VmProt::NONE, VmProt::READ, VmProt::WRITE, VmProt::DEFAULT];
            let all_seen = || seen.iter().flatten().all(|s| s.load(Ordering::SeqCst));
            let mut i = 0;
            while i < 2000 || !all_seen() || i % cycle.len() != 0 {
                let prot = cycle[i % cycle.len()];
                assert_eq!(target.vm_protect(P, P, false, prot), Ok(()));
                i += 1;
            }
            done.store(true, Ordering::SeqCst);
        });
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                let r = target.vm_read(P, P);
                saw(0, r.is_ok());
                match r {
                    Ok(bytes) => assert!(bytes == expected, "host vm_read: wrong bytes"),
                    Err(e) => note("host vm_read", Err(e)),
                }
            }
        });
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                r1.vm_write(P, &sentinel).unwrap();
                let r = r1.mach().vm_read_overwrite(p1, P, P, P);
                saw(1, r.is_ok());
                let now = r1.vm_read(P, P).unwrap();
                match r {
                    Ok(size) => {
                        assert_eq!(size, P);
                        assert!(now == expected, "cross vm_read_overwrite: wrong bytes");
                    }
                    Err(e) => {
                        assert!(
                            now == sentinel,
                            "failed vm_read_overwrite changed the caller"
                        );
                        note("cross vm_read_overwrite", Err(e));
                    }
                }
            }
        });
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                let r = r2.mach().vm_read(p2, P, P);
                saw(2, r.is_ok());
                match r {
                    Ok((addr, size)) => {
                        assert_eq!(size, P);
                        assert!(r2.vm_read(addr, P).unwrap() == expected, "cross vm_read");
                        r2.vm_deallocate(addr, size).unwrap();
                    }
                    Err(e) => note("cross vm_read", Err(e)),
                }
                assert_eq!(r2.regions(), r2_map, "vm_read left a region behind");
            }
        });
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                note("host vm_write", target.vm_write(P, &expected));
                note("cross vm_write", w1.mach().vm_write(pw, P, P, P));
            }
        });
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                let wrong: i32 = racer.call("race", 50).expect("racing guest runs");
                assert_eq!(
                    wrong, 0,
                    "guest vm_read_overwrite: other codes or wrong bytes"
                );
            }
        });
    });

    assert_eq!(outcomes.into_inner().unwrap(), Vec::<String>::new());
    // The last protection set was DEFAULT; the bytes are the ones every writer wrote.
    let region = target.vm_region(P).unwrap();
    assert_eq!(region.protection, VmProt::DEFAULT);
    assert_eq!(target.vm_read(P, P).unwrap(), expected);
}

// ---------------------------------------------------------------------------------------
// Hostile guests
// ---------------------------------------------------------------------------------------

const HOSTILE_WAT: &str = r#"
  (data (i32.const 0) "still here")
  (global $calls (mut i32) (i32.const 0))
  (func (export "ok") (result i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.const 42))
  (func (export "calls") (result i32) (global.get $calls))
  (func (export "unreachable") (result i32) unreachable)
  (func (export "div0") (param $d i32) (result i32) (i32.div_s (i32.const 7) (local.get $d)))
  (func $recurse (export "recurse") (param $n i32) (result i32)
    (i32.add (call $recurse (i32.add (local.get $n) (i32.const 1))) (i32.const 1)))
  (func (export "load") (param $a i32) (result i32) (i32.load (local.get $a)))
  (func (export "store") (param $a i32) (i32.store (local.get $a) (i32.const 1)))
  (func (export "spin") (result i32) (loop $l (br $l)) (i32.const 0))
"#;

fn trap_of(err: &anyhow::Error) -> Option<Trap> {
    err.downcast_ref::<Trap>().copied()
}

/// docs/spec.md §4 "Task lifecycle": a guest that traps (unreachable, division by zero, stack
/// overflow, out-of-bounds loads and stores, including right past the memory's end and near
/// 4 GiB) stops its own call with an `Err` carrying the trap; the host does not crash, the
/// task can be called again with its memory intact, and a peer still reads it.
#[test]
fn trapping_guests_stop_their_call_and_harm_no_task() {
    let rt = runtime();
    let hostile = rt.spawn_bytes(guest("(memory 1 4)", HOSTILE_WAT)).unwrap();
    let peer = rt.spawn_bytes("(module (memory 2))").unwrap();
    let port = peer.insert_port(&hostile);
    let page0 = hostile.vm_read(0, P).unwrap();
    assert_eq!(&page0[..10], b"still here");

    type Run<'a> = Box<dyn Fn(&Task) -> anyhow::Result<i32> + 'a>;
    let cases: Vec<(&str, Run, Trap)> = vec![
        (
            "unreachable",
            Box::new(|t: &Task| t.call("unreachable", ())),
            Trap::UnreachableCodeReached,
        ),
        (
            "div0",
            Box::new(|t: &Task| t.call("div0", 0)),
            Trap::IntegerDivisionByZero,
        ),
        (
            "recurse",
            Box::new(|t: &Task| t.call("recurse", 0)),
            Trap::StackOverflow,
        ),
        (
            "load at memory end",
            Box::new(|t: &Task| t.call("load", P as i32)),
            Trap::MemoryOutOfBounds,
        ),
        (
            "load straddling end",
            Box::new(|t: &Task| t.call("load", P as i32 - 2)),
            Trap::MemoryOutOfBounds,
        ),
        (
            "load at -4",
            Box::new(|t: &Task| t.call("load", -4)),
            Trap::MemoryOutOfBounds,
        ),
        (
            "load at 2 GiB",
            Box::new(|t: &Task| t.call("load", i32::MIN)),
            Trap::MemoryOutOfBounds,
        ),
        (
            "store at memory end",
            Box::new(|t: &Task| t.call::<i32, ()>("store", P as i32).map(|()| 0)),
            Trap::MemoryOutOfBounds,
        ),
    ];
    for (name, run, trap) in &cases {
        let err = run(&hostile).expect_err(name);
        assert_eq!(trap_of(&err), Some(*trap), "{name}: {err:?}");
        // The task lives on: callable, memory and map intact.
        assert_eq!(hostile.call::<(), i32>("ok", ()).unwrap(), 42, "{name}");
        assert_eq!(hostile.vm_read(0, P).unwrap(), page0, "{name}");
        assert_eq!(hostile.memory_pages(), 1, "{name}");
        // A peer still reads it.
        assert_eq!(
            peer.mach().vm_read_overwrite(port, 0, P, P),
            Ok(P),
            "{name}"
        );
        assert_eq!(peer.vm_read(P, P).unwrap(), page0, "{name}");
    }
    assert_eq!(
        hostile.call::<(), i32>("calls", ()).unwrap(),
        cases.len() as i32
    );
    // A trap in a task running on another thread harms nobody either.
    thread::scope(|s| {
        let h = s.spawn(|| hostile.call::<i32, i32>("recurse", 0));
        assert_eq!(peer.mach().vm_read_overwrite(port, 0, P, P), Ok(P));
        let err = h.join().unwrap().unwrap_err();
        assert_eq!(trap_of(&err), Some(Trap::StackOverflow));
    });
    assert_eq!(hostile.call::<(), i32>("ok", ()).unwrap(), 42);
}

/// A guest exporting every `"mach"` import unchanged as `x_<name>`, so that the host can
/// make the guest pass any raw values.
fn passthrough_wat(memory: &str) -> String {
    guest(memory, &passthrough_body())
}

/// The body of [`passthrough_wat`], with the name "peer" at 0x100.
fn passthrough_body() -> String {
    let mut body = String::from(r#"(data (i32.const 0x100) "peer")"#);
    for (name, params) in wasmach::MACH_IMPORTS {
        let ps = "(param i32) ".repeat(params);
        let args: String = (0..params).map(|i| format!("(local.get {i}) ")).collect();
        body.push_str(&format!(
            "(func (export \"x_{name}\") {ps}(result i32) (call ${name} {args}))\n"
        ));
    }
    body
}

fn x(task: &Task, name: &str, args: &[u32]) -> u32 {
    let params: Vec<wasmtime::Val> = args.iter().map(|&a| wasmtime::Val::I32(a as i32)).collect();
    let out = task
        .call_dynamic(&format!("x_{name}"), &params)
        .unwrap_or_else(|e| panic!("x_{name}{args:x?} trapped: {e:?}"));
    out[0].unwrap_i32() as u32
}

const SELF: u32 = 0x103;
const INVALID_ADDRESS: u32 = 1;
const INVALID_ARGUMENT: u32 = 4;
const INVALID_NAME: u32 = 15;
const SEND_INVALID_DEST: u32 = 0x1000_0003;
const SEND_INVALID_MEMORY: u32 = 0x1000_000c;

/// docs/spec.md §3 rules 1–2 and §4: a guest passing bad pointers (-1, 0xFFFFFFFC, right at the
/// memory's end, straddling it) in every pointer argument of every call gets docs/spec.md's
/// code, never a trap or a crash, and the failed call changes no byte and no map entry.
#[test]
fn bad_pointers_in_every_pointer_argument_give_codes_and_change_nothing() {
    let rt = runtime();
    let task = rt.spawn_bytes(passthrough_wat("(memory 2 4)")).unwrap();
    rt.register("peer", &task);
    let end = 2 * P;
    // Scratch: the vm_region in-pointer at 0x40 holds 0 (there is a region there).
    task.vm_write(P, &pattern(9, P as usize)).unwrap();
    let before = raw_snapshot(&task);
    let bads = [u32::MAX, 0xFFFF_FFFC, end, end - 2];
    let mut cases: Vec<(&str, Vec<u32>, u32)> = Vec::new();
    for bad in bads {
        let misaligned_or = |aligned_code| {
            if bad % P == 0 {
                aligned_code
            } else {
                INVALID_ARGUMENT
            }
        };
        cases.extend([
            ("vm_allocate", vec![SELF, bad, P, 1], INVALID_ARGUMENT),
            ("vm_allocate", vec![SELF, bad, P, 0], INVALID_ARGUMENT),
            ("vm_allocate", vec![SELF, bad, 0, 1], INVALID_ARGUMENT),
            ("vm_read", vec![SELF, 0, P, bad, 0x44], INVALID_ARGUMENT),
            ("vm_read", vec![SELF, 0, P, 0x44, bad], INVALID_ARGUMENT),
            ("vm_read", vec![SELF, 0, 0, bad, 0x44], INVALID_ARGUMENT),
            (
                "vm_read_overwrite",
                vec![SELF, 0, P, bad, 0x44],
                misaligned_or(INVALID_ADDRESS),
            ),
            (
                "vm_read_overwrite",
                vec![SELF, 0, P, P, bad],
                INVALID_ARGUMENT,
            ),
            (
                "vm_read_overwrite",
                vec![SELF, 0, 0, P, bad],
                INVALID_ARGUMENT,
            ),
            ("vm_write", vec![SELF, P, bad, P], SEND_INVALID_MEMORY),
            (
                "vm_region",
                vec![SELF, bad, 0x44, 0x48, 0x4c],
                INVALID_ARGUMENT,
            ),
            (
                "vm_region",
                vec![SELF, 0x40, bad, 0x48, 0x4c],
                INVALID_ARGUMENT,
            ),
            (
                "vm_region",
                vec![SELF, 0x40, 0x44, bad, 0x4c],
                INVALID_ARGUMENT,
            ),
            (
                "vm_region",
                vec![SELF, 0x40, 0x44, 0x48, bad],
                INVALID_ARGUMENT,
            ),
            ("bootstrap_look_up", vec![bad, 4, 0x44], INVALID_ARGUMENT),
            ("bootstrap_look_up", vec![0x100, 4, bad], INVALID_ARGUMENT),
            // Bad addresses in the target (not pointers, but the same values).
            (
                "vm_read",
                vec![SELF, bad, P, 0x44, 0x48],
                misaligned_or(INVALID_ADDRESS),
            ),
            (
                "vm_write",
                vec![SELF, bad, 0, P],
                misaligned_or(INVALID_ADDRESS),
            ),
            (
                "vm_copy",
                vec![SELF, bad, P, 0],
                misaligned_or(INVALID_ADDRESS),
            ),
            (
                "vm_copy",
                vec![SELF, 0, P, bad],
                misaligned_or(INVALID_ADDRESS),
            ),
            (
                "vm_read_overwrite",
                vec![SELF, bad, P, P, 0x44],
                misaligned_or(INVALID_ADDRESS),
            ),
        ]);
    }
    cases.extend([
        // Past 4 GiB: vm_protect and vm_deallocate say INVALID_ARGUMENT (rule 4).
        (
            "vm_protect",
            vec![SELF, u32::MAX, P, 0, 3],
            INVALID_ARGUMENT,
        ),
        (
            "vm_protect",
            vec![SELF, 0xFFFF_FFFC, P, 1, 1],
            INVALID_ARGUMENT,
        ),
        ("vm_protect", vec![SELF, end, P, 0, 1], INVALID_ADDRESS),
        ("vm_protect", vec![SELF, end - 2, P, 0, 1], INVALID_ADDRESS),
        ("vm_deallocate", vec![SELF, u32::MAX, P], INVALID_ARGUMENT),
        (
            "vm_deallocate",
            vec![SELF, 0xFFFF_FFFC, P],
            INVALID_ARGUMENT,
        ),
        // An unknown name is checked before the port pointer.
        ("bootstrap_look_up", vec![0x104, 4, u32::MAX], INVALID_NAME),
        // A port name that is no port at all.
        (
            "vm_read_overwrite",
            vec![u32::MAX, 0, P, P, u32::MAX],
            SEND_INVALID_DEST,
        ),
        ("vm_write", vec![0, 0, u32::MAX, P], SEND_INVALID_DEST),
    ]);
    for (name, args, want) in &cases {
        assert_eq!(x(&task, name, args), *want, "{name}{args:x?}");
        assert_eq!(
            raw_snapshot(&task),
            before,
            "{name}{args:x?} changed the task"
        );
    }
    // The task still works: a good call through the same door.
    assert_eq!(x(&task, "vm_read_overwrite", &[SELF, P, P, P, 0x44]), 0);
    assert_eq!(&task.vm_read(0, P).unwrap()[0x44..0x48], &P.to_le_bytes());
}

/// docs/spec.md §4 "Task lifecycle": once a peer is dropped, every call a guest makes through the
/// name it looked up for it is `MACH_SEND_INVALID_DEST`, also when the peer dies while the
/// guest is running on another thread; its registration is gone (`KERN_INVALID_NAME`); the
/// guest itself keeps working.
#[test]
fn dead_port_names_give_send_invalid_dest() {
    let _dog = watchdog("dead_port_names", 60);
    let rt = runtime();
    let body = format!(
        r#"{}
  ;; reads the peer until a call fails; counts the successful reads at 0x60
  (func (export "read_until_fail") (param $port i32) (result i32)
    (local $code i32)
    (i32.store (i32.const 0x60) (i32.const 0))
    (loop $l
      (local.set $code (call $vm_read_overwrite (local.get $port) (i32.const 0)
        (i32.const 65536) (i32.const 65536) (i32.const 0x44)))
      (if (i32.eqz (local.get $code))
        (then (i32.store (i32.const 0x60) (i32.add (i32.load (i32.const 0x60)) (i32.const 1)))))
      (br_if $l (i32.eqz (local.get $code))))
    (local.get $code))"#,
        passthrough_body()
    );
    let module = rt.compile(guest("(memory 2 4)", &body)).unwrap();
    let caller = rt.spawn(&module).unwrap();

    // Died between the look-up and the calls.
    let peer = rt.spawn_bytes("(module (memory 2))").unwrap();
    rt.register("peer", &peer);
    assert_eq!(x(&caller, "bootstrap_look_up", &[0x100, 4, 0x50]), 0);
    let port = u32::from_le_bytes(
        caller.vm_read(0, P).unwrap()[0x50..0x54]
            .try_into()
            .unwrap(),
    );
    assert_eq!(x(&caller, "vm_read_overwrite", &[port, 0, P, P, 0x44]), 0);
    drop(peer);
    let before = raw_snapshot(&caller);
    let calls: [(&str, Vec<u32>); 8] = [
        ("vm_allocate", vec![port, 0x50, P, 1]),
        ("vm_deallocate", vec![port, 0, P]),
        ("vm_protect", vec![port, 0, P, 0, 1]),
        ("vm_read", vec![port, 0, P, 0x50, 0x54]),
        ("vm_read_overwrite", vec![port, 0, P, P, 0x44]),
        ("vm_write", vec![port, 0, P, P]),
        ("vm_copy", vec![port, 0, P, P]),
        ("vm_region", vec![port, 0x50, 0x54, 0x58, 0x5c]),
    ];
    for (name, args) in &calls {
        assert_eq!(x(&caller, name, args), SEND_INVALID_DEST, "{name}");
        assert_eq!(raw_snapshot(&caller), before, "{name} changed the caller");
    }
    assert_eq!(
        caller.mach().vm_read(PortName(port), 0, P),
        Err(KernReturn::SendInvalidDest)
    );
    assert_eq!(
        x(&caller, "bootstrap_look_up", &[0x100, 4, 0x50]),
        INVALID_NAME
    );
    assert_eq!(x(&caller, "vm_read_overwrite", &[SELF, 0, P, P, 0x44]), 0);

    // Dies while the guest is reading it in a loop on another thread.
    let peer = rt.spawn_bytes("(module (memory 2))").unwrap();
    rt.register("peer", &peer);
    assert_eq!(x(&caller, "bootstrap_look_up", &[0x100, 4, 0x50]), 0);
    let port = u32::from_le_bytes(
        caller.vm_read(0, P).unwrap()[0x50..0x54]
            .try_into()
            .unwrap(),
    );
    // Zero the read counter, then let the guest read in its loop; the peer dies once the
    // guest has read it twice (it is inside its loop), and the guest sees the dead name.
    let mut page0 = caller.vm_read(0, P).unwrap();
    page0[0x60..0x64].fill(0);
    caller.vm_write(0, &page0).unwrap();
    let (code, reads_before) = thread::scope(|s| {
        let h = s.spawn(|| caller.call::<i32, i32>("read_until_fail", port as i32));
        wait_until(Duration::from_secs(30), || {
            h.is_finished() || word_at(&caller, 0x60) >= 2
        });
        let reads_before = word_at(&caller, 0x60);
        drop(peer);
        (h.join().unwrap().unwrap() as u32, reads_before)
    });
    assert!(
        reads_before >= 2,
        "the guest was not reading in its loop when the peer died ({reads_before} reads)"
    );
    assert_eq!(code, SEND_INVALID_DEST);
    assert_eq!(x(&caller, "vm_read_overwrite", &[SELF, 0, P, P, 0x44]), 0);
}

/// An infinite loop is stopped by fuel: the call returns `Err` with `Trap::OutOfFuel`, the
/// host lives, the task can be refuelled and called again, and other tasks of the runtime
/// still run and still read it.
#[test]
fn fuel_stops_an_infinite_loop_and_other_tasks_keep_working() {
    let rt = Runtime::with_options(RuntimeOptions::default().consume_fuel(true)).unwrap();
    let module = rt.compile(guest("(memory 1)", HOSTILE_WAT)).unwrap();
    let looper = rt
        .spawn_with(&module, &TaskOptions::default().fuel(100_000))
        .unwrap();
    let other = rt.spawn(&module).unwrap();
    let port = other.insert_port(&looper);
    looper.vm_write(0, &pattern(5, P as usize)).unwrap();
    let err = looper.call::<(), i32>("spin", ()).unwrap_err();
    assert_eq!(trap_of(&err), Some(Trap::OutOfFuel), "{err:?}");
    assert_eq!(other.call::<(), i32>("ok", ()).unwrap(), 42);
    assert_eq!(other.mach().vm_read_overwrite(port, 0, P, 0), Ok(P));
    assert_eq!(other.vm_read(0, P).unwrap(), pattern(5, P as usize));
    looper.set_fuel(10_000).unwrap();
    assert_eq!(looper.call::<(), i32>("ok", ()).unwrap(), 42);
    // Spawned after the trap, a task runs too.
    let late = rt.spawn(&module).unwrap();
    assert_eq!(late.call::<(), i32>("ok", ()).unwrap(), 42);
}

/// An infinite loop is stopped by an epoch deadline when another thread advances the epoch:
/// the call returns `Err` with `Trap::Interrupt`, and a task spawned before still runs and
/// reads the looper.
#[test]
fn epoch_deadline_stops_an_infinite_loop_and_other_tasks_keep_working() {
    let _dog = watchdog("epoch_deadline", 60);
    let rt = Runtime::with_options(RuntimeOptions::default().epoch_interruption(true)).unwrap();
    let module = rt.compile(guest("(memory 1)", HOSTILE_WAT)).unwrap();
    let looper = rt
        .spawn_with(&module, &TaskOptions::default().epoch_deadline(1))
        .unwrap();
    let other = rt.spawn(&module).unwrap();
    let port = other.insert_port(&looper);
    looper.vm_write(0, &pattern(5, P as usize)).unwrap();
    let result = thread::scope(|s| {
        let h = s.spawn(|| looper.call::<(), i32>("spin", ()));
        while !h.is_finished() {
            rt.increment_epoch();
            thread::sleep(Duration::from_millis(5));
        }
        h.join().unwrap()
    });
    let err = result.unwrap_err();
    assert_eq!(trap_of(&err), Some(Trap::Interrupt), "{err:?}");
    assert_eq!(other.call::<(), i32>("ok", ()).unwrap(), 42);
    assert_eq!(other.mach().vm_read_overwrite(port, 0, P, 0), Ok(P));
    assert_eq!(other.vm_read(0, P).unwrap(), pattern(5, P as usize));
}

/// Other tasks keep working after an epoch interruption, also those spawned after it: once
/// the epoch has advanced, a task spawned with default options (no deadline) on an
/// epoch-interrupting runtime must spawn without a panic and run without being interrupted.
#[test]
fn a_task_spawned_after_the_epoch_advanced_runs() {
    let rt = Runtime::with_options(RuntimeOptions::default().epoch_interruption(true)).unwrap();
    let module = rt.compile(guest("(memory 1)", HOSTILE_WAT)).unwrap();
    rt.increment_epoch();
    rt.increment_epoch();
    let late = rt.spawn(&module).expect("spawn after the epoch advanced");
    assert_eq!(late.call::<(), i32>("ok", ()).unwrap(), 42);
}
