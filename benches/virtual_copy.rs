//! Virtual copies against physical ones (`RuntimeOptions::copy`), in one run per size
//! (1, 4, 16, 256, 4096 pages), with memcpy as the baseline.
//!
//! Groups `virtual_copy/pages_<n>`, functions:
//! - `memcpy_fresh`, `memcpy_hot`: the host copying the bytes into a fresh buffer (whose
//!   pages fault in) and into one already faulted in: the limits of a physical copy.
//! - `<mode>/read`: task A's allocating `vm_read` of task B's range, then `vm_deallocate`.
//! - `<mode>/read_store`: the same, A's guest storing one word into the copy in between
//!   (with a virtual copy, the first write to a shared page: one 4 KiB copy-on-write).
//! - `<mode>/read_sum`: the same, A's guest reading every byte of the copy in between.
//! - `<mode>/read_write`: the same, A's guest writing every 4 KiB page of the copy.
//! - `<mode>/copy`: `vm_copy` of the range inside B, to just after it.
//! - `<mode>/read_source_writes`: the same, B's guest writing every 4 KiB page of its range
//!   (the source breaks the sharing; the next copy of a page it wrote is physical).
//!
//! with `<mode>` `physical` or `virtual` (every size shared). `cargo bench --bench
//! virtual_copy` runs it (about 8 minutes); `cargo test --benches` runs each case once.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use wasmach::{CopyMode, PortName, Runtime, RuntimeOptions, Task, TaskFunc, VM_PAGE_SIZE};

const PAGE: u32 = VM_PAGE_SIZE;
const SIZES: [u32; 5] = [1, 4, 16, 256, 4096];

/// Loads of every 8 bytes and stores to every 4 KiB page of a range.
const GUEST: &str = r#"
(module
  (memory 1 65536)
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "store") (param i32 i32) (i32.store (local.get 0) (local.get 1)))
  (func (export "sum") (param $a i32) (param $len i32) (result i64)
    (local $end i32) (local $s i64)
    (local.set $end (i32.add (local.get $a) (local.get $len)))
    (loop $l
      (local.set $s (i64.add (local.get $s) (i64.load (local.get $a))))
      (local.set $a (i32.add (local.get $a) (i32.const 8)))
      (br_if $l (i32.lt_u (local.get $a) (local.get $end))))
    (local.get $s))
  (func (export "touch") (param $a i32) (param $len i32)
    (local $end i32)
    (local.set $end (i32.add (local.get $a) (local.get $len)))
    (loop $l
      (i32.store8 (local.get $a) (local.get $a))
      (local.set $a (i32.add (local.get $a) (i32.const 4096)))
      (br_if $l (i32.lt_u (local.get $a) (local.get $end))))))
"#;

/// A reader task and a source task holding `pages` pages of data at 0 (and as many free
/// after them, for `vm_copy`), in a runtime copying in `mode`.
struct Pair {
    a: Task,
    b: Task,
    port: PortName,
    sum: TaskFunc<(u32, u32), i64>,
    touch_a: TaskFunc<(u32, u32), ()>,
    store: TaskFunc<(u32, u32), ()>,
    touch_b: TaskFunc<(u32, u32), ()>,
}

fn pair(mode: CopyMode, pages: u32) -> Pair {
    let rt = Runtime::with_options(RuntimeOptions::default().copy(mode)).expect("runtime");
    let module = rt.compile(GUEST).expect("compile");
    let (a, b) = (rt.spawn(&module).unwrap(), rt.spawn(&module).unwrap());
    b.call::<u32, i32>("grow", 2 * pages).unwrap();
    let data: Vec<u8> = (0..pages * PAGE).map(|i| (i * 7) as u8).collect();
    b.vm_write(0, &data).unwrap();
    let port = a.insert_port(&b);
    Pair {
        sum: a.typed_func("sum").unwrap(),
        touch_a: a.typed_func("touch").unwrap(),
        store: a.typed_func("store").unwrap(),
        touch_b: b.typed_func("touch").unwrap(),
        a,
        b,
        port,
    }
}

impl Pair {
    /// An allocating `vm_read` of `pages` pages from B, `then` on the copy, `vm_deallocate`.
    fn read(&self, pages: u32, then: impl Fn(&Pair, u32)) {
        let (data, size) = self.a.mach().vm_read(self.port, 0, pages * PAGE).unwrap();
        then(self, data);
        self.a.vm_deallocate(data, size).unwrap();
    }
}

fn bench(c: &mut Criterion) {
    for pages in SIZES {
        let bytes = (pages * PAGE) as usize;
        let mut group = c.benchmark_group(format!("virtual_copy/pages_{pages}"));
        group.throughput(Throughput::Bytes(bytes as u64));
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(2));
        if pages >= 256 {
            group.sample_size(10);
        }
        let source = vec![7u8; bytes];
        group.bench_function("memcpy_fresh", |bench| {
            bench.iter(|| {
                let mut fresh = vec![0u8; bytes];
                fresh.copy_from_slice(black_box(&source));
                black_box(fresh);
            })
        });
        let mut hot = vec![0u8; bytes];
        group.bench_function("memcpy_hot", |bench| {
            bench.iter(|| hot.copy_from_slice(black_box(&source)))
        });
        for (name, mode) in [
            ("physical", CopyMode::Physical),
            ("virtual", CopyMode::Virtual),
        ] {
            let p = pair(mode, pages);
            let len = pages * PAGE;
            group.bench_function(BenchmarkId::new(name, "read"), |bench| {
                bench.iter(|| p.read(pages, |_, _| {}))
            });
            group.bench_function(BenchmarkId::new(name, "read_store"), |bench| {
                bench.iter(|| p.read(pages, |p, data| p.a.call_func(&p.store, (data, 1)).unwrap()))
            });
            group.bench_function(BenchmarkId::new(name, "read_sum"), |bench| {
                bench.iter(|| {
                    p.read(pages, |p, data| {
                        black_box(p.a.call_func(&p.sum, (data, len)).unwrap());
                    })
                })
            });
            group.bench_function(BenchmarkId::new(name, "read_write"), |bench| {
                bench.iter(|| {
                    p.read(pages, |p, data| {
                        p.a.call_func(&p.touch_a, (data, len)).unwrap()
                    })
                })
            });
            group.bench_function(BenchmarkId::new(name, "copy"), |bench| {
                bench.iter(|| p.b.vm_copy(0, len, len).unwrap())
            });
            // last: a source page written since a copy froze it is copied physically
            group.bench_function(BenchmarkId::new(name, "read_source_writes"), |bench| {
                bench.iter(|| p.read(pages, |p, _| p.b.call_func(&p.touch_b, (0, len)).unwrap()))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
