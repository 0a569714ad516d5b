//! Concurrency stress: 64 tasks, 2 threads, random cross-task `vm_write`,
//! `vm_read_overwrite` and `vm_copy` of self-checking pages, with a watchdog.
//!
//! The 64 target tasks never run guest code: every byte written to them comes through the
//! kernel, which holds the target's map lock for the whole copy. So docs/spec.md §6's race (a task
//! running while it is copied) cannot arise and no torn page is allowed at all.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use wasmach::{PortName, Runtime, Task, VM_PAGE_SIZE};

const TASKS: usize = 64;
/// Slots per target task: pages 1..=3 (page 0 stays untouched).
const SLOTS_PER_TASK: usize = 3;
const SLOTS: usize = TASKS * SLOTS_PER_TASK;
const THREADS: usize = 2;
const OPS_PER_THREAD: usize = 6000;
const P: u32 = VM_PAGE_SIZE;
const MAGIC: u32 = 0x5354_5253; // "STRS"

/// The content of a page: a header (magic, origin slot, sequence number, checksum) and a
/// body derived from origin and sequence. A page written as `(origin, seq)` and later copied
/// elsewhere keeps its origin and sequence.
fn page(origin: u32, seq: u32) -> Vec<u8> {
    let mut bytes = vec![0u8; P as usize];
    let mut x = origin.wrapping_mul(0x9E37_79B9) ^ seq.wrapping_mul(0x85EB_CA6B) | 1;
    for chunk in bytes[16..].chunks_mut(4) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    let sum = checksum(&bytes[16..]);
    for (i, v) in [MAGIC, origin, seq, sum].into_iter().enumerate() {
        bytes[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
    }
    bytes
}

fn checksum(body: &[u8]) -> u32 {
    body.iter().fold(0x811C_9DC5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    })
}

fn word(bytes: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(bytes[i * 4..i * 4 + 4].try_into().unwrap())
}

/// `Some((origin, seq))` for a whole page, `None` for a page never written (all zero);
/// panics on a torn or foreign page.
fn decode(bytes: &[u8], slot: usize) -> Option<(u32, u32)> {
    if bytes.iter().all(|&b| b == 0) {
        return None;
    }
    assert_eq!(word(bytes, 0), MAGIC, "slot {slot}: not a stress page");
    let (origin, seq) = (word(bytes, 1), word(bytes, 2));
    assert_eq!(
        bytes,
        &page(origin, seq)[..],
        "slot {slot}: torn page ({origin}, {seq})"
    );
    Some((origin, seq))
}

/// A slot: (target task, page).
fn slot_at(slot: usize) -> (usize, u32) {
    (slot / SLOTS_PER_TASK, (slot % SLOTS_PER_TASK) as u32 + 1)
}

/// The slots thread `t` writes (every slot has exactly one writer).
fn owns(t: usize, slot: usize) -> bool {
    slot % THREADS == t
}

/// What a thread reports: its counts of writes, reads and copies, and what it last put into
/// each slot it owns (`(origin, seq)`, `None` for never written).
type Report = (usize, usize, usize, Vec<Option<(u32, u32)>>);

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Shared knowledge: the highest sequence number any writer has *started* to put into an
/// origin slot (a reader may see a write whose call has not returned yet).
struct Ledger {
    started: Vec<AtomicU32>,
}

#[test]
fn sixty_four_tasks_on_two_threads_lose_and_tear_nothing() {
    let (disarm, armed) = mpsc::channel::<()>();
    thread::spawn(move || {
        if armed.recv_timeout(Duration::from_secs(120)) == Err(mpsc::RecvTimeoutError::Timeout) {
            eprintln!("stress: no progress within 120 s (deadlock?); aborting");
            std::process::abort();
        }
    });

    let rt = Runtime::new().unwrap();
    let targets: Vec<Task> = (0..TASKS)
        .map(|_| rt.spawn_bytes("(module (memory 4))").unwrap())
        .collect();
    let ledger = Ledger {
        started: (0..SLOTS).map(|_| AtomicU32::new(0)).collect(),
    };
    let failed = AtomicBool::new(false);

    let per_thread: Vec<Report> = thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (targets, ledger, failed, rt) = (&targets, &ledger, &failed, &rt);
                s.spawn(move || {
                    // The caller: page 1 stages outgoing pages, page 2 receives reads.
                    let caller = rt.spawn_bytes("(module (memory 3))").unwrap();
                    let ports: Vec<PortName> =
                        targets.iter().map(|x| caller.insert_port(x)).collect();
                    let mach = caller.mach();
                    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1));
                    // What this thread last put into each slot it owns.
                    let mut expect: Vec<Option<(u32, u32)>> = vec![None; SLOTS];
                    let (mut writes, mut reads, mut copies) = (0, 0, 0);
                    for _ in 0..OPS_PER_THREAD {
                        if failed.load(Ordering::Relaxed) {
                            break;
                        }
                        match rng.below(3) {
                            0 => {
                                let slot = (rng.below(SLOTS / THREADS)) * THREADS + t;
                                let seq = ledger.started[slot].load(Ordering::Relaxed) + 1;
                                ledger.started[slot].store(seq, Ordering::SeqCst);
                                caller.vm_write(P, &page(slot as u32, seq)).unwrap();
                                let (task, pg) = slot_at(slot);
                                mach.vm_write(ports[task], pg * P, P, P).unwrap();
                                expect[slot] = Some((slot as u32, seq));
                                writes += 1;
                            }
                            1 => {
                                let slot = rng.below(SLOTS);
                                let (task, pg) = slot_at(slot);
                                mach.vm_read_overwrite(ports[task], pg * P, P, 2 * P)
                                    .unwrap();
                                let bytes = caller.vm_read(2 * P, P).unwrap();
                                if let Some((origin, seq)) = decode(&bytes, slot) {
                                    let started =
                                        ledger.started[origin as usize].load(Ordering::SeqCst);
                                    assert!(
                                        seq <= started,
                                        "slot {slot}: seq {seq} of {origin} was never written"
                                    );
                                }
                                if owns(t, slot) {
                                    assert_eq!(
                                        decode(&bytes, slot),
                                        expect[slot],
                                        "slot {slot}: lost write"
                                    );
                                }
                                reads += 1;
                            }
                            _ => {
                                // inside one target, from one of our slots to another of ours
                                let task = rng.below(TASKS);
                                let mine: Vec<usize> = (0..SLOTS_PER_TASK)
                                    .map(|i| task * SLOTS_PER_TASK + i)
                                    .filter(|&s| owns(t, s))
                                    .collect();
                                if mine.len() < 2 {
                                    continue;
                                }
                                let (from, to) = (mine[0], mine[1]);
                                let (from, to) = if rng.below(2) == 0 {
                                    (from, to)
                                } else {
                                    (to, from)
                                };
                                mach.vm_copy(
                                    ports[task],
                                    slot_at(from).1 * P,
                                    P,
                                    slot_at(to).1 * P,
                                )
                                .unwrap();
                                expect[to] = expect[from];
                                copies += 1;
                            }
                        }
                    }
                    (writes, reads, copies, expect)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|e| {
                    failed.store(true, Ordering::Relaxed);
                    std::panic::resume_unwind(e)
                })
            })
            .collect()
    });

    // Every slot ends holding exactly what its writer last put there.
    let mut transfers = 0;
    for (t, (writes, reads, copies, expect)) in per_thread.iter().enumerate() {
        assert!(
            *writes > 0 && *reads > 0 && *copies > 0,
            "thread {t} did every kind of call"
        );
        transfers += writes + reads + copies;
        for slot in (0..SLOTS).filter(|&s| owns(t, s)) {
            let (task, pg) = slot_at(slot);
            let bytes = targets[task].vm_read(pg * P, P).unwrap();
            assert_eq!(decode(&bytes, slot), expect[slot], "slot {slot} at the end");
        }
    }
    // (a copy is skipped where the thread owns one slot of the task it drew)
    assert!(
        transfers > THREADS * OPS_PER_THREAD / 2,
        "{transfers} transfers checked"
    );
    drop(disarm);
}

#[test]
fn the_stress_page_format_detects_tearing() {
    let whole = page(7, 3);
    assert_eq!(decode(&whole, 0), Some((7, 3)));
    let mut torn = whole.clone();
    torn[40_000..].copy_from_slice(&page(7, 4)[40_000..]);
    assert!(std::panic::catch_unwind(|| decode(&torn, 0)).is_err());
    assert_eq!(decode(&vec![0; P as usize], 0), None);
}
