//! The cost of guest protection (`RuntimeOptions::guest_protection`): each case runs the
//! same guest or call with protection on and off, in one criterion group, in one run.
//!
//! Groups (`protection/<case>`, functions `on` and `off`):
//! - `copy64`, `copy4k`: a copy-heavy guest, one `memory.copy` of 64 B or 4 KiB per
//!   iteration (with protection each is a checked host call; without, wasmtime's libcall).
//! - `compute`: a compute-heavy guest, one FNV-1a pass over a 64 KiB page of its own
//!   memory (byte loads, multiplies) and a store per iteration: JIT code only, so the
//!   mapping's protections cost nothing unless a page is touched for the first time.
//! - `allocate_deallocate`: the host's `vm_allocate` + `vm_deallocate` of one page (each
//!   changes the mapping's protection with protection on: two `mprotect`s).
//! - `read_overwrite`: a one-page `vm_read_overwrite` from a peer (a transfer: no table
//!   change).
//! - `read_deallocate`: an allocating `vm_read` of one page and its `vm_deallocate`, with a
//!   64 KiB memcpy as the baseline (the figure the transfer targets quote).
//! - `protect_toggle`: `vm_protect` of one page to `READ` and back (two `mprotect`s).
//!
//! `cargo bench --bench protection` runs it; `cargo test --benches` runs each case once.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wasmach::{PortName, Runtime, RuntimeOptions, Task, VM_PAGE_SIZE, VmProt};

const PAGE: u32 = VM_PAGE_SIZE;

/// The guest loops; every iteration count is a parameter, so one call times many.
const GUEST: &str = r#"
(module
  (memory 4)
  ;; $n copies of $len bytes from page 1 to successive offsets of page 2
  (func (export "copies") (param $n i32) (param $len i32)
    (local $i i32)
    (loop $next
      (memory.copy
        (i32.add (i32.const 0x20000) (i32.and (i32.mul (local.get $i) (i32.const 64))
                                              (i32.const 0x7fff)))
        (i32.const 0x10000)
        (local.get $len))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $next (i32.lt_u (local.get $i) (local.get $n)))))
  ;; $n FNV-1a passes over page 1, each hash stored into page 3
  (func (export "compute") (param $n i32) (result i32)
    (local $i i32) (local $a i32) (local $h i32)
    (loop $pass
      (local.set $h (i32.const 0x811c9dc5))
      (local.set $a (i32.const 0x10000))
      (loop $byte
        (local.set $h (i32.mul (i32.xor (local.get $h) (i32.load8_u (local.get $a)))
                               (i32.const 16777619)))
        (local.set $a (i32.add (local.get $a) (i32.const 1)))
        (br_if $byte (i32.lt_u (local.get $a) (i32.const 0x20000))))
      (i32.store (i32.add (i32.const 0x30000) (i32.and (i32.mul (local.get $i) (i32.const 4))
                                                       (i32.const 0xfffc)))
                 (local.get $h))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $pass (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $h)))
"#;

/// A runtime with protection `on` or not, and a task of `GUEST` with page 1 filled.
fn setup(on: bool) -> (Runtime, Task) {
    let runtime =
        Runtime::with_options(RuntimeOptions::default().guest_protection(on)).expect("runtime");
    let task = runtime.spawn_bytes(GUEST).expect("guest");
    assert_eq!(task.guest_protection(), on);
    let page: Vec<u8> = (0..PAGE).map(|i| (i * 7 + 3) as u8).collect();
    task.vm_write(PAGE, &page).expect("fill page 1");
    (runtime, task)
}

/// [`setup`], plus a one-page peer task and the task's name for it (the peer lives as long
/// as the returned handle).
fn setup_with_peer(on: bool) -> (Runtime, Task, Task, PortName) {
    let (runtime, task) = setup(on);
    let peer = runtime.spawn_bytes("(module (memory 1))").expect("peer");
    let port = task.insert_port(&peer);
    (runtime, task, peer, port)
}

const MODES: [(&str, bool); 2] = [("on", true), ("off", false)];

fn guest_loops(c: &mut Criterion) {
    for (case, len) in [("copy64", 64u32), ("copy4k", 4096)] {
        let mut group = c.benchmark_group(format!("protection/{case}"));
        group.throughput(Throughput::Bytes(u64::from(len)));
        for (mode, on) in MODES {
            let (_runtime, task) = setup(on);
            group.bench_function(mode, |b| {
                b.iter_custom(|iters| {
                    let n = iters.min(i32::MAX as u64) as i32;
                    let start = Instant::now();
                    task.call::<(i32, i32), ()>("copies", (n, len as i32))
                        .expect("copies");
                    start.elapsed()
                })
            });
        }
        group.finish();
    }

    let mut group = c.benchmark_group("protection/compute");
    group.throughput(Throughput::Bytes(u64::from(PAGE)));
    let mut hashes = Vec::new();
    for (mode, on) in MODES {
        let (_runtime, task) = setup(on);
        group.bench_function(mode, |b| {
            b.iter_custom(|iters| {
                let n = iters.min(i32::MAX as u64) as i32;
                let start = Instant::now();
                let h = task.call::<i32, i32>("compute", n).expect("compute");
                let elapsed = start.elapsed();
                hashes.push(h);
                elapsed
            })
        });
    }
    group.finish();
    // Both modes computed the same thing.
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{hashes:?}");
}

fn table_changes(c: &mut Criterion) {
    let mut group = c.benchmark_group("protection/allocate_deallocate");
    for (mode, on) in MODES {
        let (_runtime, task) = setup(on);
        group.bench_function(mode, |b| {
            b.iter(|| {
                let address = task.vm_allocate(0, PAGE, true).expect("vm_allocate");
                task.vm_deallocate(address, PAGE).expect("vm_deallocate");
            })
        });
    }
    group.finish();

    // A transfer: one page of a peer read into the task in place (the host acting as the
    // task). No table changes, so protection should cost nothing here.
    let mut group = c.benchmark_group("protection/read_overwrite");
    group.throughput(Throughput::Bytes(u64::from(PAGE)));
    for (mode, on) in MODES {
        let (_runtime, task, _peer, port) = setup_with_peer(on);
        group.bench_function(mode, |b| {
            b.iter(|| {
                task.mach()
                    .vm_read_overwrite(port, 0, PAGE, 2 * PAGE)
                    .expect("vm_read_overwrite")
            })
        });
    }
    group.finish();

    // The allocating vm_read of one page of a peer, then its vm_deallocate (the host acting
    // as the task), against a 64 KiB memcpy between page-aligned buffers.
    let mut group = c.benchmark_group("protection/read_deallocate");
    group.throughput(Throughput::Bytes(u64::from(PAGE)));
    for (mode, on) in MODES {
        let (_runtime, task, _peer, port) = setup_with_peer(on);
        group.bench_function(mode, |b| {
            b.iter(|| {
                let (address, size) = task.mach().vm_read(port, 0, PAGE).expect("vm_read");
                task.vm_deallocate(address, size).expect("vm_deallocate");
            })
        });
    }
    let layout = std::alloc::Layout::from_size_align(PAGE as usize, PAGE as usize).unwrap();
    // SAFETY: `layout` has a non-zero size; both buffers are freed below.
    let (src, dst) = unsafe {
        (
            std::alloc::alloc_zeroed(layout),
            std::alloc::alloc_zeroed(layout),
        )
    };
    assert!(!src.is_null() && !dst.is_null(), "allocation failed");
    group.bench_function("baseline/memcpy64k", |b| {
        // SAFETY: two distinct live allocations of `PAGE` bytes each.
        b.iter(|| unsafe {
            std::ptr::copy_nonoverlapping(std::hint::black_box(src), dst, PAGE as usize)
        })
    });
    // SAFETY: allocated above with `layout`, no longer used.
    unsafe {
        std::alloc::dealloc(src, layout);
        std::alloc::dealloc(dst, layout);
    }
    group.finish();

    let mut group = c.benchmark_group("protection/protect_toggle");
    for (mode, on) in MODES {
        let (_runtime, task) = setup(on);
        group.bench_function(mode, |b| {
            b.iter(|| {
                task.vm_protect(PAGE, PAGE, false, VmProt::READ)
                    .expect("READ");
                task.vm_protect(PAGE, PAGE, false, VmProt::DEFAULT)
                    .expect("DEFAULT");
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = guest_loops, table_changes
}
criterion_main!(benches);
