//! Inter-sandbox copies side by side with their baselines, measured in one run.
//!
//! Groups:
//! - `transfer/<pages>`: every transfer case at 1, 16, 256 and 4096 pages (64 KiB to
//!   256 MiB) with the baselines: the host's `memcpy` (the limit), wasmtime's
//!   `Memory::read` into a `Vec` then `Memory::write` (what a user writes without wasmach),
//!   Linux `process_vm_readv` from a child process, and the guest's own `memory.copy`.
//! - `per_call`: the cost of one call: one-page transfers (`vm_read_overwrite`, `vm_write`,
//!   an allocating `vm_read` + `vm_deallocate`, with guest protection on and off) against a
//!   64 KiB memcpy and the guest's own `memory.copy`, a zero-size call against a no-op
//!   import and an 8-byte copy through kept handles, a failing call (bad alignment: the
//!   check-and-return path), and the cheapest import.
//! - `spawn`: spawning (and dropping) a task from a compiled module, with the default options
//!   and with physical copies (also with 500 other tasks alive), against wasmtime's
//!   `Instance::new` and `InstancePre::instantiate` with its default allocator and with its
//!   pooling allocator: a one-page module, a 17-page one that grows as it starts, and the
//!   core-module guest programs.
//!
//! `cargo bench --bench transfer` runs it all; `cargo test --benches` runs each case once.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use wasmach::{CopyMode, PortName, Runtime, RuntimeOptions, Task, VM_PAGE_SIZE};

const PAGE: u32 = VM_PAGE_SIZE;
const GUEST: &str = include_str!("guest.wat");
const SIZES: [u32; 4] = [1, 16, 256, 4096];

/// A caller task running `guest.wat` and a peer task, each with `pages` pages of data at
/// page 1 and `pages` more pages after it (destinations of in-task copies).
struct Pair {
    caller: Task,
    peer: Task,
    /// The caller's name for the peer.
    port: PortName,
    /// The caller's name for itself.
    own: PortName,
}

impl Pair {
    fn new(runtime: &Runtime, pages: u32) -> Pair {
        let caller = runtime.spawn_bytes(GUEST).expect("caller");
        let peer = runtime.spawn_bytes("(module (memory 1))").expect("peer");
        for task in [&caller, &peer] {
            task.vm_allocate(PAGE, 2 * pages * PAGE, false)
                .expect("allocate");
            let data: Vec<u8> = (0..pages * PAGE).map(|i| (i * 7 + 3) as u8).collect();
            task.vm_write(PAGE, &data).expect("fill");
            task.vm_write(PAGE + pages * PAGE, &data).expect("fault in");
        }
        runtime.register("source", &peer);
        let port: i32 = caller.call("look_up_source", ()).expect("look up");
        Pair {
            port: PortName(port as u32),
            own: caller.self_port(),
            caller,
            peer,
        }
    }

    /// Runs the guest loop `func` and returns the elapsed time; every call must succeed.
    fn guest_loop<P: wasmtime::WasmParams>(&self, func: &str, params: P) -> Duration {
        self.guest_loop_expecting(func, params, 0)
    }

    /// Runs the guest loop `func`, checks it returned `code`, and returns the elapsed time.
    fn guest_loop_expecting<P: wasmtime::WasmParams>(
        &self,
        func: &str,
        params: P,
        code: i32,
    ) -> Duration {
        let start = Instant::now();
        let kr: i32 = self.caller.call(func, params).expect("guest loop");
        let elapsed = start.elapsed();
        assert_eq!(kr, code, "{func} returned {kr}");
        elapsed
    }
}

// The baselines' fixtures (page-aligned buffers, the `process_vm_readv` child, two plain
// wasmtime instances), shared with `wasmach bench`.
#[allow(dead_code)]
#[path = "../runtime/cli/src/bench/baselines.rs"]
mod baselines;
use baselines::{Child, PageBuf, Plain};

fn transfer(c: &mut Criterion) {
    let runtime = Runtime::new().expect("runtime");
    for pages in SIZES {
        let size = pages * PAGE;
        let len = size as usize;
        let mut group = c.benchmark_group(format!("transfer/{pages}"));
        group.throughput(Throughput::Bytes(u64::from(size)));
        if pages >= 256 {
            group
                .sample_size(10)
                .warm_up_time(Duration::from_millis(500));
        }
        group.measurement_time(Duration::from_secs(2));

        // Baselines.
        let src = PageBuf::new(len, |i| i as u8);
        let mut dst = PageBuf::new(len, |_| 1);
        group.bench_function("baseline/memcpy", |b| {
            b.iter(|| {
                dst.as_mut_slice()
                    .copy_from_slice(black_box(src.as_slice()))
            });
        });
        let mut plain = Plain::new(pages).expect("plain instances");
        group.bench_function("baseline/vec_double_copy", |b| {
            b.iter(|| plain.copy(len).expect("copy"))
        });
        drop(plain);
        let remote = PageBuf::new(len, |i| (i * 7 + 3) as u8);
        let child = Child::new(&remote).expect("child");
        group.bench_function("baseline/process_vm_readv", |b| {
            b.iter(|| child.read(dst.as_mut_slice()).expect("process_vm_readv"))
        });
        drop(child);

        let pair = Pair::new(&runtime, pages);
        let (port, own, second) = (pair.port.0 as i32, pair.own.0 as i32, (PAGE + size) as i32);
        let (p1, s) = (PAGE as i32, size as i32);
        group.bench_function("baseline/guest_memory_copy", |b| {
            b.iter_custom(|n| pair.guest_loop("memory_copy", (second, p1, s, n as i32)))
        });

        // Guest-initiated calls.
        group.bench_function("guest/vm_read_overwrite", |b| {
            b.iter_custom(|n| pair.guest_loop("read_overwrite", (port, p1, s, second, n as i32)))
        });
        group.bench_function("guest/vm_write", |b| {
            b.iter_custom(|n| pair.guest_loop("write", (port, second, p1, s, n as i32)))
        });
        group.bench_function("guest/vm_read+vm_deallocate", |b| {
            b.iter_custom(|n| pair.guest_loop("read", (port, p1, s, n as i32)))
        });
        group.bench_function("guest/vm_copy_in_self", |b| {
            b.iter_custom(|n| pair.guest_loop("copy", (own, p1, s, second, n as i32)))
        });
        group.bench_function("guest/vm_copy_in_peer", |b| {
            b.iter_custom(|n| pair.guest_loop("copy", (port, p1, s, second, n as i32)))
        });

        // The host API: the host as the caller, and task A acting on task B.
        group.bench_function("host/vm_read_overwrite", |b| {
            b.iter(|| {
                pair.peer
                    .vm_read_overwrite(PAGE, dst.as_mut_slice())
                    .expect("read")
            })
        });
        group.bench_function("host/vm_write", |b| {
            b.iter(|| pair.peer.vm_write(PAGE, src.as_slice()).expect("write"))
        });
        group.bench_function("host/vm_read", |b| {
            b.iter(|| pair.peer.vm_read(PAGE, size).expect("read"))
        });
        group.bench_function("host/vm_copy", |b| {
            b.iter(|| pair.peer.vm_copy(PAGE, size, PAGE + size).expect("copy"))
        });
        let mach = pair.caller.mach();
        group.bench_function("host/a_read_overwrite_b", |b| {
            b.iter(|| {
                mach.vm_read_overwrite(pair.port, PAGE, size, PAGE + size)
                    .expect("read")
            })
        });
        group.bench_function("host/a_write_b", |b| {
            b.iter(|| {
                mach.vm_write(pair.port, PAGE + size, PAGE, size)
                    .expect("write")
            })
        });
        group.finish();
    }
}

fn per_call(c: &mut Criterion) {
    let runtime = Runtime::new().expect("runtime");
    let pair = Pair::new(&runtime, 1);
    let port = pair.port.0 as i32;
    let p = PAGE as i32;
    let mut group = c.benchmark_group("per_call");
    group.throughput(Throughput::Elements(1));
    let src = PageBuf::new(PAGE as usize, |_| 3);
    let mut dst = PageBuf::new(PAGE as usize, |_| 0);
    group.bench_function("baseline/memcpy_64KiB", |b| {
        b.iter(|| {
            dst.as_mut_slice()
                .copy_from_slice(black_box(src.as_slice()))
        })
    });
    // The same copy between two heap `Vec`s allocated one after the other (their
    // addresses differ by 64 KiB + a malloc header: a few bytes modulo 4 KiB).
    let heap_src = vec![3u8; PAGE as usize];
    let mut heap_dst = vec![0u8; PAGE as usize];
    group.bench_function("baseline/memcpy_64KiB_heap_vecs", |b| {
        b.iter(|| heap_dst.copy_from_slice(black_box(&heap_src)))
    });
    group.bench_function("guest/vm_read_overwrite_1_page", |b| {
        b.iter_custom(|n| pair.guest_loop("read_overwrite", (port, p, p, 2 * p, n as i32)))
    });
    // The same page through the guest's own `memory.copy`, and both with guest protection
    // off (a second runtime), in this one run.
    group.bench_function("guest/memory_copy_1_page", |b| {
        b.iter_custom(|n| pair.guest_loop("memory_copy", (2 * p, p, p, n as i32)))
    });
    let unprotected =
        Runtime::with_options(RuntimeOptions::default().guest_protection(false)).expect("runtime");
    let open = Pair::new(&unprotected, 1);
    let open_port = open.port.0 as i32;
    group.bench_function("guest/vm_read_overwrite_1_page_protection_off", |b| {
        b.iter_custom(|n| open.guest_loop("read_overwrite", (open_port, p, p, 2 * p, n as i32)))
    });
    group.bench_function("guest/memory_copy_1_page_protection_off", |b| {
        b.iter_custom(|n| open.guest_loop("memory_copy", (2 * p, p, p, n as i32)))
    });
    // The other direction, vm_write of one page to the peer, with and without protection.
    group.bench_function("guest/vm_write_1_page", |b| {
        b.iter_custom(|n| pair.guest_loop("write", (port, p, p, p, n as i32)))
    });
    group.bench_function("guest/vm_write_1_page_protection_off", |b| {
        b.iter_custom(|n| open.guest_loop("write", (open_port, p, p, p, n as i32)))
    });
    // An allocating vm_read of one page and its vm_deallocate, from the guest: two table
    // changes, each an mprotect with protection on (none without).
    group.bench_function("guest/vm_read+vm_deallocate_1_page", |b| {
        b.iter_custom(|n| pair.guest_loop("read", (port, p, p, n as i32)))
    });
    group.bench_function("guest/vm_read+vm_deallocate_1_page_protection_off", |b| {
        b.iter_custom(|n| open.guest_loop("read", (open_port, p, p, n as i32)))
    });
    group.bench_function("guest/failing_call_misaligned", |b| {
        let misaligned = (port, p + 1, p, 2 * p);
        b.iter_custom(|n| {
            let (port, addr, size, data) = misaligned;
            // KERN_INVALID_ARGUMENT (4) on every call
            pair.guest_loop_expecting("read_overwrite_all", (port, addr, size, data, n as i32), 4)
        })
    });
    group.bench_function("guest/mach_task_self", |b| {
        b.iter_custom(|n| pair.guest_loop("task_self", (n as i32,)))
    });
    // A call with nothing to copy: the port lookup, the locks, the size-0 rule and the
    // out-value; against `mach_task_self` (a no-op import) and an 8-byte copy between two
    // instances through kept wasmtime handles.
    group.bench_function("guest/zero_size_call", |b| {
        b.iter_custom(|n| pair.guest_loop("read_overwrite_all", (port, p, 0, 2 * p, n as i32)))
    });
    let engine = wasmtime::Engine::default();
    let module =
        wasmtime::Module::new(&engine, r#"(module (memory (export "memory") 1))"#).expect("module");
    let mut stores = [(); 2].map(|()| wasmtime::Store::new(&engine, ()));
    let memories = stores.each_mut().map(|store| {
        let instance = wasmtime::Instance::new(&mut *store, &module, &[]).expect("instance");
        instance.get_memory(&mut *store, "memory").expect("memory")
    });
    group.bench_function("baseline/kept_handle_copy_8_bytes", |b| {
        let [a, c] = &mut stores;
        b.iter(|| {
            let mut word = [0u8; 8];
            memories[0].read(&*a, 8, &mut word).expect("read");
            memories[1]
                .write(&mut *c, 8, black_box(&word))
                .expect("write");
        })
    });
    group.finish();
}

fn spawn(c: &mut Criterion) {
    const WAT: &str = r#"(module (memory 1) (data (i32.const 0) "hello") (func (export "f") (result i32) (i32.const 1)))"#;
    let runtime = Runtime::new().expect("runtime");
    let module = runtime.compile(WAT).expect("compile");
    let engine = wasmtime::Engine::default();
    let plain = wasmtime::Module::new(&engine, WAT).expect("module");
    let mut group = c.benchmark_group("spawn");
    group.bench_function("baseline/wasmtime_instantiate", |b| {
        b.iter(|| {
            let mut store = wasmtime::Store::new(&engine, ());
            black_box(wasmtime::Instance::new(&mut store, &plain, &[]).expect("instance"));
        })
    });
    // wasmtime's fastest path with the default allocator: a pre-linked `InstancePre`.
    let pre = pre_linked(&engine, WAT);
    group.bench_function(
        "baseline/wasmtime_instance_pre",
        instantiating(&engine, &pre),
    );
    // wasmtime's pooling allocator (its fastest instantiation: slots reused, memory reset
    // in place), sized like wasmach's spawn pool.
    let pooled_engine = pooled_engine();
    let pooled_pre = pre_linked(&pooled_engine, WAT);
    group.bench_function(
        "baseline/wasmtime_pooling_instance_pre",
        instantiating(&pooled_engine, &pooled_pre),
    );
    group.bench_function(BenchmarkId::new("wasmach_spawn", "compiled"), |b| {
        b.iter(|| black_box(runtime.spawn(&module).expect("spawn")))
    });
    // Anonymous task memory (no memory file: every copy physical), the cost of the file.
    let physical =
        Runtime::with_options(RuntimeOptions::default().copy(CopyMode::Physical)).expect("runtime");
    let physical_module = physical.compile(WAT).expect("compile");
    group.bench_function(BenchmarkId::new("wasmach_spawn", "physical_copies"), |b| {
        b.iter(|| black_box(physical.spawn(&physical_module).expect("spawn")))
    });
    // The same with 500 other tasks alive: spawning must not cost more with more tasks.
    let crowd: Vec<_> = (0..500)
        .map(|_| physical.spawn(&physical_module).expect("spawn"))
        .collect();
    group.bench_function(
        BenchmarkId::new("wasmach_spawn", "physical_copies_500_alive"),
        |b| b.iter(|| black_box(physical.spawn(&physical_module).expect("spawn"))),
    );
    drop(crowd);
    // A program that grows its memory as it starts, as a Rust guest's allocator does: its
    // reservation goes back warm one page larger than the next task of it starts with.
    const GROWING: &str = r#"(module (memory 17)
        (func $start
            (drop (memory.grow (i32.const 1)))
            (i32.store (i32.const 1048000) (i32.const 1))
            (i32.store (i32.const 1114200) (i32.const 1)))
        (start $start))"#;
    let growing = runtime.compile(GROWING).expect("compile");
    let pre = pre_linked(&pooled_engine, GROWING);
    group.bench_function(
        "baseline/wasmtime_pooling_instance_pre/growing",
        instantiating(&pooled_engine, &pre),
    );
    group.bench_function(BenchmarkId::new("wasmach_spawn", "growing"), |b| {
        b.iter(|| black_box(runtime.spawn(&growing).expect("spawn")))
    });
    // The core-module guest programs of `guests/programs` (their "mach" imports are the
    // runtime's; for plain wasmtime, imports that trap).
    for (name, path) in [
        ("producer", wasmach_guests::PRODUCER),
        ("consumer", wasmach_guests::CONSUMER),
        ("snapshotter", wasmach_guests::SNAPSHOTTER),
        ("guard", wasmach_guests::GUARD),
    ] {
        let bytes = std::fs::read(path).expect("guest program");
        let module = runtime.compile(&bytes).expect("compile");
        let pre = pre_linked(&engine, &bytes);
        group.bench_function(
            BenchmarkId::new("baseline/wasmtime_instance_pre", name),
            instantiating(&engine, &pre),
        );
        let pre = pre_linked(&pooled_engine, &bytes);
        group.bench_function(
            BenchmarkId::new("baseline/wasmtime_pooling_instance_pre", name),
            instantiating(&pooled_engine, &pre),
        );
        group.bench_function(BenchmarkId::new("wasmach_spawn", name), |b| {
            b.iter(|| black_box(runtime.spawn(&module).expect("spawn")))
        });
    }
    group.finish();
}

/// `bytes` compiled on `engine` and pre-linked, every import trapping (the guest programs'
/// "mach" imports are the runtime's; a spawn baseline never calls them).
fn pre_linked(engine: &wasmtime::Engine, bytes: impl AsRef<[u8]>) -> wasmtime::InstancePre<()> {
    let module = wasmtime::Module::new(engine, bytes).expect("module");
    let mut linker = wasmtime::Linker::new(engine);
    linker
        .define_unknown_imports_as_traps(&module)
        .expect("imports");
    linker.instantiate_pre(&module).expect("instance pre")
}

/// The loop of a spawn baseline: `pre` instantiated in a new store of `engine`, then both
/// dropped.
fn instantiating<'a>(
    engine: &'a wasmtime::Engine,
    pre: &'a wasmtime::InstancePre<()>,
) -> impl FnMut(&mut criterion::Bencher<'_>) + 'a {
    move |b| {
        b.iter(|| {
            let mut store = wasmtime::Store::new(engine, ());
            black_box(pre.instantiate(&mut store).expect("instance"));
        })
    }
}

/// An engine with wasmtime's pooling instance allocator, 16 slots (wasmach's default spawn
/// pool), each memory a 4 GiB reservation as wasmach's.
fn pooled_engine() -> wasmtime::Engine {
    let mut pooling = wasmtime::PoolingAllocationConfig::default();
    pooling
        .total_core_instances(16)
        .total_memories(16)
        .total_tables(16)
        .total_component_instances(0);
    let mut config = wasmtime::Config::new();
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pooling));
    wasmtime::Engine::new(&config).expect("pooling engine")
}

criterion_group!(benches, transfer, per_call, spawn);
criterion_main!(benches);
