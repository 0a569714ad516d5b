//! Helpers shared by the test modules.

#![allow(dead_code)]

use wasmach::{Region, Runtime, Task, VmProt};

/// The page size, as the tests use it.
pub const PAGE: u32 = wasmach::VM_PAGE_SIZE;

/// Every `"mach"` import, named `$vm_allocate`, `$vm_read`, ... as in docs/spec.md §4.
pub const MACH_IMPORTS_WAT: &str = r#"
  (import "mach" "vm_allocate" (func $vm_allocate (param i32 i32 i32 i32) (result i32)))
  (import "mach" "vm_deallocate" (func $vm_deallocate (param i32 i32 i32) (result i32)))
  (import "mach" "vm_protect" (func $vm_protect (param i32 i32 i32 i32 i32) (result i32)))
  (import "mach" "vm_read" (func $vm_read (param i32 i32 i32 i32 i32) (result i32)))
  (import "mach" "vm_read_overwrite" (func $vm_read_overwrite (param i32 i32 i32 i32 i32) (result i32)))
  (import "mach" "vm_write" (func $vm_write (param i32 i32 i32 i32) (result i32)))
  (import "mach" "vm_copy" (func $vm_copy (param i32 i32 i32 i32) (result i32)))
  (import "mach" "vm_region" (func $vm_region (param i32 i32 i32 i32 i32) (result i32)))
  (import "mach" "mach_task_self" (func $mach_task_self (result i32)))
  (import "mach" "bootstrap_look_up" (func $bootstrap_look_up (param i32 i32 i32) (result i32)))
"#;

/// A guest module: every `"mach"` import, the memory declaration `memory` (for example
/// `(memory 4)`), and `body` (functions, data segments...).
pub fn guest(memory: &str, body: &str) -> String {
    format!("(module {MACH_IMPORTS_WAT} {memory} {body})")
}

/// A fresh runtime with default options.
pub fn runtime() -> Runtime {
    Runtime::new().expect("runtime")
}

/// `len` bytes of a pattern that differs per `seed`.
pub fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(u32::from(seed)) as u8)
        .collect()
}

/// Everything observable of a task from the host: memory size, map, and the bytes of
/// every readable region.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    pub pages: u32,
    pub regions: Vec<Region>,
    pub bytes: Vec<(u32, Vec<u8>)>,
}

pub fn snapshot(task: &Task) -> Snapshot {
    let regions = task.regions();
    let bytes = regions
        .iter()
        .filter(|r| r.protection.contains(VmProt::READ))
        .map(|r| {
            let size = u32::try_from(r.size).expect("region under 4 GiB");
            (
                r.address,
                task.vm_read(r.address, size).expect("read region"),
            )
        })
        .collect();
    Snapshot {
        pages: task.memory_pages(),
        regions,
        bytes,
    }
}

/// Everything of a task's address space, raw: every page's table entry and the bytes of
/// every committed page, unreadable pages (no `READ`, unallocated) included, taken under
/// the task's map lock ([`Task::debug_snapshot`]). What "a failed call changes nothing"
/// compares.
pub fn raw_snapshot(task: &Task) -> wasmach::DebugSnapshot {
    task.debug_snapshot()
        .expect("/proc/self/mem, which the raw snapshot reads, opens")
}

/// Polls `ready` until it holds or `timeout` has passed, and says whether it held: how a
/// test waits for a running guest to signal that it is where the test needs it, with a
/// deadline instead of a hang (and instead of a sleep that may end too early).
pub fn wait_until(timeout: std::time::Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if ready() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_micros(100));
    }
}

/// The little-endian `u32` at `address` of `task`'s memory, read by the host (its page must
/// be readable).
pub fn word_at(task: &Task, address: u32) -> u32 {
    let page = address / PAGE * PAGE;
    let bytes = task
        .vm_read(page, PAGE)
        .expect("host vm_read of the word's page");
    let at = (address - page) as usize;
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}
