//! docs/spec.md §3 and §4 through the guest ABI: every call made by a WAT guest through its
//! `"mach"` imports, with host-side inspection (`vm_read`, `regions()`) of the results.
//!
//! One generic guest module serves every test: it exports a thin wrapper around each
//! import (same name, same parameters), so a test drives the guest with arbitrary
//! arguments, plus a few helpers for its own loads and stores, `memory.size`,
//! `memory.grow` and a checksum of its whole memory. These tests are about the calls, so
//! they run with guest protection off (docs/spec.md §5 as written: the guest's own loads and
//! stores obey WebAssembly's bounds only), which lets the checksum see unreadable pages
//! and lets the guest store into pages it has not allocated; `protection.rs` tests what
//! changes when the table binds the guest too.

use wasmach::{KernReturn, Region, Runtime, RuntimeOptions, Task, TaskOptions, VmProt};

use crate::common::*;

/// A runtime whose guests' own accesses are not bound by the table (see above).
fn runtime() -> Runtime {
    Runtime::with_options(RuntimeOptions::default().guest_protection(false)).expect("runtime")
}

const P: u32 = PAGE;
/// What `mach_task_self` returns.
const SELF: u32 = 0x103;

const SUCCESS: u32 = 0;
const INVALID_ADDRESS: u32 = KernReturn::InvalidAddress.code();
const PROTECTION_FAILURE: u32 = KernReturn::ProtectionFailure.code();
const NO_SPACE: u32 = KernReturn::NoSpace.code();
const INVALID_ARGUMENT: u32 = KernReturn::InvalidArgument.code();
const INVALID_NAME: u32 = KernReturn::InvalidName.code();
const SEND_INVALID_DEST: u32 = KernReturn::SendInvalidDest.code();
const SEND_INVALID_MEMORY: u32 = KernReturn::SendInvalidMemory.code();

/// Protection bits as the guest passes them.
const NONE: u32 = 0;
const R: u32 = 1;
const W: u32 = 2;
const X: u32 = 4;
const RW: u32 = 3;
const ALL: u32 = 7;

/// The out-value area of page 0: `[OUTS, OUTS + OUTS_LEN)`, filled with `FILL` before a
/// call so that every byte a call writes (or must not write) is visible.
const OUTS: u32 = 0x100;
const OUTS_LEN: u32 = 0x40;
const FILL: u8 = 0xee;
/// Out-value slots inside the area, deliberately not 4-aligned.
const A: u32 = 0x101;
const B: u32 = 0x109;
const C: u32 = 0x111;
const D: u32 = 0x119;
/// Where the helper looks peers up, and where names are stored for `bootstrap_look_up`.
const PORT_SLOT: u32 = 0x180;
const NAME_AT: u32 = 0x200;

/// The generic guest's exports.
const GUEST_BODY: &str = r#"
  (func (export "vm_allocate") (param i32 i32 i32 i32) (result i32)
    (call $vm_allocate (local.get 0) (local.get 1) (local.get 2) (local.get 3)))
  (func (export "vm_deallocate") (param i32 i32 i32) (result i32)
    (call $vm_deallocate (local.get 0) (local.get 1) (local.get 2)))
  (func (export "vm_protect") (param i32 i32 i32 i32 i32) (result i32)
    (call $vm_protect (local.get 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4)))
  (func (export "vm_read") (param i32 i32 i32 i32 i32) (result i32)
    (call $vm_read (local.get 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4)))
  (func (export "vm_read_overwrite") (param i32 i32 i32 i32 i32) (result i32)
    (call $vm_read_overwrite (local.get 0) (local.get 1) (local.get 2) (local.get 3)
      (local.get 4)))
  (func (export "vm_write") (param i32 i32 i32 i32) (result i32)
    (call $vm_write (local.get 0) (local.get 1) (local.get 2) (local.get 3)))
  (func (export "vm_copy") (param i32 i32 i32 i32) (result i32)
    (call $vm_copy (local.get 0) (local.get 1) (local.get 2) (local.get 3)))
  (func (export "vm_region") (param i32 i32 i32 i32 i32) (result i32)
    (call $vm_region (local.get 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4)))
  (func (export "mach_task_self") (result i32) (call $mach_task_self))
  (func (export "bootstrap_look_up") (param i32 i32 i32) (result i32)
    (call $bootstrap_look_up (local.get 0) (local.get 1) (local.get 2)))

  (func (export "load") (param i32) (result i32) (i32.load (local.get 0)))
  (func (export "store") (param i32 i32) (i32.store (local.get 0) (local.get 1)))
  (func (export "store8") (param i32 i32) (i32.store8 (local.get 0) (local.get 1)))
  (func (export "fill") (param i32 i32 i32)
    (memory.fill (local.get 0) (local.get 1) (local.get 2)))
  ;; byte i of [addr, addr + len) = i*31 + (i>>8)*7 + (i>>16)*101 + seed, as `pattern`
  ;; in this file: every page and every 256-byte block of a pattern differs
  (func (export "pattern") (param $addr i32) (param $len i32) (param $seed i32)
    (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (i32.store8 (i32.add (local.get $addr) (local.get $i))
          (i32.add
            (i32.add (i32.mul (local.get $i) (i32.const 31))
                     (i32.mul (i32.shr_u (local.get $i) (i32.const 8)) (i32.const 7)))
            (i32.add (i32.mul (i32.shr_u (local.get $i) (i32.const 16)) (i32.const 101))
                     (local.get $seed))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next))))
  (func (export "size") (result i32) (memory.size))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  ;; FNV-style hash of the whole memory, 8 bytes at a time
  (func (export "checksum") (result i64)
    (local $i i32) (local $end i32) (local $h i64)
    (local.set $end (i32.mul (memory.size) (i32.const 65536)))
    (local.set $h (i64.const 0xcbf29ce484222325))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $h (i64.mul (i64.xor (local.get $h) (i64.load (local.get $i)))
                               (i64.const 0x100000001b3)))
        (local.set $i (i32.add (local.get $i) (i32.const 8)))
        (br $next)))
    (local.get $h))
"#;

/// Everything a failed call must leave as it was: the map, the memory size, every byte
/// (as the guest sums them, and raw: every page's entry and bytes, read by the host).
#[derive(Debug, PartialEq)]
struct Snap {
    map: Vec<Region>,
    pages: u32,
    sum: u64,
    raw: wasmach::DebugSnapshot,
}

/// A task running the generic guest. Derefs to the [`Task`] for host-side inspection.
struct Guest(Task);

impl std::ops::Deref for Guest {
    type Target = Task;
    fn deref(&self) -> &Task {
        &self.0
    }
}

fn code(result: anyhow::Result<i32>) -> u32 {
    result.expect("the guest call trapped") as u32
}

/// Spawns the generic guest with the memory declaration `memory`, e.g. `(memory 4)`.
fn spawn(rt: &Runtime, memory: &str) -> Guest {
    Guest(rt.spawn_bytes(guest(memory, GUEST_BODY)).expect("spawn"))
}

/// As [`spawn`], with a memory quota of `quota_pages` pages.
fn spawn_quota(rt: &Runtime, memory: &str, quota_pages: u64) -> Guest {
    let module = rt.compile(guest(memory, GUEST_BODY)).expect("compile");
    let options = TaskOptions::default().max_memory(quota_pages * u64::from(P));
    Guest(rt.spawn_with(&module, &options).expect("spawn"))
}

/// Spawns a peer, registers it as "peer" and has `g` look it up; returns the peer and
/// `g`'s name for it.
fn with_peer(rt: &Runtime, g: &Guest, memory: &str) -> (Guest, u32) {
    let peer = spawn(rt, memory);
    rt.register("peer", &peer);
    assert_eq!(g.look_up(b"peer", PORT_SLOT), SUCCESS);
    let port = g.load(PORT_SLOT);
    // The same name as the host's grant of the same task finds in g's namespace.
    assert_eq!(port, g.insert_port(&peer).raw(), "peer port {port:#x}");
    assert!(port != 0 && port != SELF, "peer port {port:#x}");
    (peer, port)
}

impl Guest {
    // --- The Mach calls, made by the guest through its imports. ---

    fn allocate(&self, port: u32, address_ptr: u32, size: u32, anywhere: i32) -> u32 {
        code(self.call::<(i32, i32, i32, i32), i32>(
            "vm_allocate",
            (port as i32, address_ptr as i32, size as i32, anywhere),
        ))
    }

    fn deallocate(&self, port: u32, address: u32, size: u32) -> u32 {
        code(self.call::<(i32, i32, i32), i32>(
            "vm_deallocate",
            (port as i32, address as i32, size as i32),
        ))
    }

    fn protect(&self, port: u32, address: u32, size: u32, set_max: i32, prot: u32) -> u32 {
        code(self.call::<(i32, i32, i32, i32, i32), i32>(
            "vm_protect",
            (
                port as i32,
                address as i32,
                size as i32,
                set_max,
                prot as i32,
            ),
        ))
    }

    fn read(&self, port: u32, address: u32, size: u32, data_ptr: u32, count_ptr: u32) -> u32 {
        code(self.call::<(i32, i32, i32, i32, i32), i32>(
            "vm_read",
            (
                port as i32,
                address as i32,
                size as i32,
                data_ptr as i32,
                count_ptr as i32,
            ),
        ))
    }

    fn read_overwrite(&self, port: u32, address: u32, size: u32, data: u32, out: u32) -> u32 {
        code(self.call::<(i32, i32, i32, i32, i32), i32>(
            "vm_read_overwrite",
            (
                port as i32,
                address as i32,
                size as i32,
                data as i32,
                out as i32,
            ),
        ))
    }

    fn write(&self, port: u32, address: u32, data: u32, count: u32) -> u32 {
        code(self.call::<(i32, i32, i32, i32), i32>(
            "vm_write",
            (port as i32, address as i32, data as i32, count as i32),
        ))
    }

    fn copy(&self, port: u32, source: u32, count: u32, dest: u32) -> u32 {
        code(self.call::<(i32, i32, i32, i32), i32>(
            "vm_copy",
            (port as i32, source as i32, count as i32, dest as i32),
        ))
    }

    fn region(
        &self,
        port: u32,
        address_ptr: u32,
        size_ptr: u32,
        prot_ptr: u32,
        max_ptr: u32,
    ) -> u32 {
        code(self.call::<(i32, i32, i32, i32, i32), i32>(
            "vm_region",
            (
                port as i32,
                address_ptr as i32,
                size_ptr as i32,
                prot_ptr as i32,
                max_ptr as i32,
            ),
        ))
    }

    fn task_self(&self) -> u32 {
        code(self.call::<(), i32>("mach_task_self", ()))
    }

    fn look_up_raw(&self, name_ptr: u32, name_len: u32, port_ptr: u32) -> u32 {
        code(self.call::<(i32, i32, i32), i32>(
            "bootstrap_look_up",
            (name_ptr as i32, name_len as i32, port_ptr as i32),
        ))
    }

    /// `bootstrap_look_up` of `name`, stored at [`NAME_AT`] first.
    fn look_up(&self, name: &[u8], port_ptr: u32) -> u32 {
        self.put_bytes(NAME_AT, name);
        self.look_up_raw(NAME_AT, name.len() as u32, port_ptr)
    }

    // --- The guest's own loads and stores (not bound by the protection table). ---

    fn load(&self, address: u32) -> u32 {
        self.call::<i32, i32>("load", address as i32).unwrap() as u32
    }

    fn store(&self, address: u32, value: u32) {
        self.call::<(i32, i32), ()>("store", (address as i32, value as i32))
            .unwrap()
    }

    fn put_bytes(&self, address: u32, bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            let at = address.wrapping_add(i as u32) as i32;
            self.call::<(i32, i32), ()>("store8", (at, i32::from(b)))
                .unwrap();
        }
    }

    fn fill(&self, address: u32, byte: u8, len: u32) {
        self.call::<(i32, i32, i32), ()>("fill", (address as i32, i32::from(byte), len as i32))
            .unwrap()
    }

    /// Writes `gpat(seed, len)` at `address` (the guest's own stores).
    fn put_pattern(&self, address: u32, len: u32, seed: u8) {
        self.call::<(i32, i32, i32), ()>("pattern", (address as i32, len as i32, i32::from(seed)))
            .unwrap()
    }

    /// `memory.size`, as the guest sees it.
    fn size(&self) -> u32 {
        self.call::<(), i32>("size", ()).unwrap() as u32
    }

    /// `memory.grow`, as the guest does it.
    fn grow(&self, pages: u32) -> i32 {
        self.call::<i32, i32>("grow", pages as i32).unwrap()
    }

    fn checksum(&self) -> u64 {
        self.call::<(), i64>("checksum", ()).unwrap() as u64
    }

    // --- Host-side setup and inspection. ---

    fn snap(&self) -> Snap {
        Snap {
            map: self.regions(),
            pages: self.memory_pages(),
            sum: self.checksum(),
            raw: raw_snapshot(self),
        }
    }

    /// The bytes `[address, address + len)` read by the host (needs `READ`).
    fn bytes(&self, address: u32, len: u32) -> Vec<u8> {
        self.vm_read(address, len).expect("host vm_read")
    }

    /// The regions as `(first page, pages, cur, max)`.
    fn map(&self) -> Vec<(u32, u32, u32, u32)> {
        self.regions()
            .iter()
            .map(|r| {
                (
                    r.address / P,
                    (r.size / u64::from(P)) as u32,
                    r.protection.bits(),
                    r.max_protection.bits(),
                )
            })
            .collect()
    }

    fn free_pages(&self, first: u32, count: u32) {
        self.vm_deallocate(first * P, count * P).unwrap();
    }

    fn set_cur(&self, first: u32, count: u32, prot: u32) {
        self.vm_protect(
            first * P,
            count * P,
            false,
            VmProt::from_bits(prot).unwrap(),
        )
        .unwrap();
    }

    fn set_max(&self, first: u32, count: u32, prot: u32) {
        self.vm_protect(first * P, count * P, true, VmProt::from_bits(prot).unwrap())
            .unwrap();
    }

    /// Fills the out-value area with [`FILL`].
    fn reset_outs(&self) {
        self.fill(OUTS, FILL, OUTS_LEN);
    }

    /// The out-value area holds [`FILL`] except for the little-endian `u32`s `written`.
    #[track_caller]
    fn assert_outs(&self, written: &[(u32, u32)]) {
        let mut want = vec![FILL; OUTS_LEN as usize];
        for &(at, value) in written {
            let o = (at - OUTS) as usize;
            want[o..o + 4].copy_from_slice(&value.to_le_bytes());
        }
        let page = self.bytes(0, P);
        assert_eq!(page[OUTS as usize..(OUTS + OUTS_LEN) as usize], want[..]);
    }
}

/// `len` bytes of this file's pattern (what the guest's `pattern` export writes): unlike
/// `common::pattern`, which repeats every 256 bytes, every page and every 256-byte block
/// differs, so a page landing in the wrong place is seen.
fn gpat(seed: u8, len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| {
            i.wrapping_mul(31)
                .wrapping_add((i >> 8) * 7)
                .wrapping_add((i >> 16) * 101)
                .wrapping_add(u32::from(seed)) as u8
        })
        .collect()
}

/// `gpat(seed, len)` sliced to `[from, to)`.
fn pat(seed: u8, len: u32, from: u32, to: u32) -> Vec<u8> {
    gpat(seed, len as usize)[from as usize..to as usize].to_vec()
}

fn zeros(len: u32) -> Vec<u8> {
    vec![0; len as usize]
}

// ======================================================================================
// Ports: mach_task_self, the port check first, bootstrap_look_up, namespaces.
// ======================================================================================

/// mach_task_self returns 0x103, the host's `self_port()`, and that name targets the
/// caller itself.
#[test]
fn mach_task_self_is_0x103_and_names_the_caller() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 2)");
    assert_eq!(g.task_self(), SELF);
    assert_eq!(g.self_port().raw(), SELF);
    g.reset_outs();
    assert_eq!(g.allocate(g.task_self(), A, P, 1), SUCCESS);
    g.assert_outs(&[(A, 2 * P)]);
    assert_eq!(g.map(), vec![(0, 3, RW, ALL)]);
}

/// Rule 1.1: a null or unknown target name is MACH_SEND_INVALID_DEST for every call, before
/// any other check (the other arguments are all invalid too), and changes nothing.
#[test]
fn bad_port_is_send_invalid_dest_for_every_call_and_changes_nothing() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    // A registered peer that `g` has not looked up: 0x203 is not yet a name of `g`.
    let peer = spawn(&rt, "(memory 4)");
    rt.register("peer", &peer);
    g.free_pages(2, 1);
    g.set_cur(3, 1, R);
    g.reset_outs();
    let (before, peer_before) = (g.snap(), peer.snap());
    for port in [0, 0x203, 0x303, 0x104, 0x3, 1, 0xffff_ffff] {
        let bad = 2 * P + 4; // an unallocated out-pointer
        assert_eq!(g.allocate(port, A, P, 1), SEND_INVALID_DEST, "{port:#x}");
        assert_eq!(g.allocate(port, bad, P, 0), SEND_INVALID_DEST);
        assert_eq!(g.deallocate(port, 0, 4 * P), SEND_INVALID_DEST);
        assert_eq!(g.deallocate(port, P, u32::MAX), SEND_INVALID_DEST);
        assert_eq!(g.protect(port, 0, P, 0, 8), SEND_INVALID_DEST);
        assert_eq!(g.protect(port, 0, P, 1, NONE), SEND_INVALID_DEST);
        assert_eq!(g.read(port, 1, 1, bad, bad), SEND_INVALID_DEST);
        assert_eq!(g.read(port, 0, P, A, B), SEND_INVALID_DEST);
        assert_eq!(g.read_overwrite(port, 0, P, 3 * P, bad), SEND_INVALID_DEST);
        assert_eq!(g.read_overwrite(port, 0, P, P, A), SEND_INVALID_DEST);
        assert_eq!(g.write(port, P + 1, 2 * P, P), SEND_INVALID_DEST);
        assert_eq!(g.write(port, 0, P, P), SEND_INVALID_DEST);
        assert_eq!(g.copy(port, 1, 1, 1), SEND_INVALID_DEST);
        assert_eq!(g.copy(port, 0, P, P), SEND_INVALID_DEST);
        assert_eq!(g.region(port, A, B, C, D), SEND_INVALID_DEST);
        assert_eq!(g.region(port, bad, bad, bad, bad), SEND_INVALID_DEST);
    }
    g.assert_outs(&[]);
    assert_eq!(g.snap(), before);
    assert_eq!(peer.snap(), peer_before);
}

/// Rules 1.1 and 3: with a bad port, size 0 does not succeed, and no out-value is written.
#[test]
fn port_check_comes_before_size_zero() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 2)");
    g.reset_outs();
    let before = g.snap();
    for port in [0, 0x203] {
        assert_eq!(g.allocate(port, A, 0, 1), SEND_INVALID_DEST);
        assert_eq!(g.allocate(port, A, 0, 0), SEND_INVALID_DEST);
        assert_eq!(g.deallocate(port, 0, 0), SEND_INVALID_DEST);
        assert_eq!(g.protect(port, 0, 0, 0, R), SEND_INVALID_DEST);
        assert_eq!(g.protect(port, 0, 0, 0, 8), SEND_INVALID_DEST);
        assert_eq!(g.read(port, 0, 0, A, B), SEND_INVALID_DEST);
        assert_eq!(g.read_overwrite(port, 0, 0, 0, A), SEND_INVALID_DEST);
        assert_eq!(g.write(port, 0, 0, 0), SEND_INVALID_DEST);
        assert_eq!(g.copy(port, 0, 0, 0), SEND_INVALID_DEST);
    }
    g.assert_outs(&[]);
    assert_eq!(g.snap(), before);
}

/// bootstrap_look_up writes the new name little-endian at `port_ptr` (unaligned here),
/// the name is 0x203, and it reaches the registered task.
#[test]
fn bootstrap_look_up_writes_the_name_and_it_reaches_the_peer() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 2)");
    let peer = spawn(&rt, "(memory 2)");
    rt.register("peer", &peer);
    g.reset_outs();
    assert_eq!(g.look_up(b"peer", A), SUCCESS);
    // The host's grant of the same task finds the same name in the guest's namespace.
    let port = g.insert_port(&peer).raw();
    assert!(port != 0 && port != SELF, "{port:#x}");
    g.assert_outs(&[(A, port)]);
    // The name works: the guest writes its page 1 into the peer's page 1.
    g.put_pattern(P, P, 42);
    assert_eq!(g.write(port, P, P, P), SUCCESS);
    assert_eq!(peer.bytes(P, P), gpat(42, P as usize));
    assert_eq!(peer.bytes(0, P), zeros(P));
}

/// The same task always gets the same name in one namespace; different tasks get
/// different names; looking up oneself gives the self name 0x103.
#[test]
fn bootstrap_look_up_same_task_same_name() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 1)");
    let a = spawn(&rt, "(memory 1)");
    let b = spawn(&rt, "(memory 1)");
    rt.register("a", &a);
    rt.register("b", &b);
    rt.register("a-again", &a);
    rt.register("me", &g);
    assert_eq!(g.look_up(b"a", A), SUCCESS);
    let name_a = g.load(A);
    assert_eq!(g.look_up(b"b", A), SUCCESS);
    let name_b = g.load(A);
    assert_eq!(g.look_up(b"a", A), SUCCESS);
    assert_eq!(g.load(A), name_a);
    assert_eq!(g.look_up(b"a-again", A), SUCCESS);
    assert_eq!(g.load(A), name_a);
    assert_ne!(name_a, name_b);
    assert_eq!(g.look_up(b"me", A), SUCCESS);
    assert_eq!(g.load(A), SELF);
}

/// An unregistered name is KERN_INVALID_NAME, and nothing is written.
#[test]
fn bootstrap_look_up_unknown_name_is_invalid_name() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 1)");
    let peer = spawn(&rt, "(memory 1)");
    rt.register("peer", &peer);
    for name in [&b"nobody"[..], b"pee", b"peer2", b"Peer", b""] {
        g.put_bytes(NAME_AT, name);
        g.reset_outs();
        let before = g.snap();
        assert_eq!(
            g.look_up_raw(NAME_AT, name.len() as u32, A),
            INVALID_NAME,
            "{name:?}"
        );
        g.assert_outs(&[]);
        assert_eq!(g.snap(), before);
    }
}

/// A name range that is not readable memory of the caller, or is not UTF-8, is
/// KERN_INVALID_ARGUMENT (before the lookup), and nothing is written.
#[test]
fn bootstrap_look_up_bad_name_pointer_or_utf8_is_invalid_argument() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    let peer = spawn(&rt, "(memory 1)");
    rt.register("peer", &peer);
    // "peer" on an unallocated page, on a page without READ, and straddling pages.
    g.put_bytes(2 * P, b"peer");
    g.put_bytes(3 * P, b"peer");
    g.put_bytes(4 * P - 2, b"pe");
    g.free_pages(2, 1);
    g.set_cur(3, 1, W);
    g.put_bytes(NAME_AT, &[0x70, 0xff, 0xfe, 0x72]);
    g.reset_outs();
    let before = g.snap();
    for (ptr, len) in [
        (2 * P, 4),       // unallocated page
        (3 * P, 4),       // write-only page
        (4 * P - 2, 4),   // straddles the end of memory
        (P - 2, P + 4),   // runs into the unallocated page 2
        (0xffff_fffe, 4), // past 4 GiB
        (0, u32::MAX),    // huge length
        (NAME_AT, 4),     // not UTF-8
    ] {
        assert_eq!(
            g.look_up_raw(ptr, len, A),
            INVALID_ARGUMENT,
            "{ptr:#x}+{len}"
        );
    }
    g.assert_outs(&[]);
    assert_eq!(g.snap(), before);
}

/// The name is looked up before `port_ptr` is checked; a bad `port_ptr` is
/// KERN_INVALID_ARGUMENT, writes nothing and inserts no name.
#[test]
fn bootstrap_look_up_checks_port_ptr_after_the_lookup_and_inserts_nothing_on_failure() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    let a = spawn(&rt, "(memory 1)");
    let b = spawn(&rt, "(memory 1)");
    rt.register("a", &a);
    rt.register("b", &b);
    g.free_pages(2, 1);
    g.set_cur(3, 1, R);
    g.reset_outs();
    let before = g.snap();
    for bad in [2 * P + 8, 3 * P + 8, 4 * P - 2, 0xffff_fffe] {
        assert_eq!(g.look_up(b"nobody", bad), INVALID_NAME, "{bad:#x}");
        assert_eq!(g.look_up(b"a", bad), INVALID_ARGUMENT, "{bad:#x}");
    }
    assert_eq!(g.snap().map, before.map);
    g.assert_outs(&[]);
    assert_eq!(g.bytes(3 * P, P), zeros(P));
    // The failed look-ups of "a" inserted no name: names then come out exactly as in a
    // fresh namespace that never tried.
    let control = spawn(&rt, "(memory 1)");
    assert_eq!(control.look_up(b"b", A), SUCCESS);
    assert_eq!(control.look_up(b"a", B), SUCCESS);
    assert_eq!(g.look_up(b"b", A), SUCCESS);
    assert_eq!(g.load(A), control.load(A));
    assert_eq!(g.look_up(b"a", A), SUCCESS);
    assert_eq!(g.load(A), control.load(B));
    assert_ne!(control.load(A), control.load(B));
}

/// A guest can name only tasks it was given: another guest's name for a peer means
/// nothing in its own namespace.
#[test]
fn a_name_from_another_namespace_is_send_invalid_dest() {
    let rt = runtime();
    let holder = spawn(&rt, "(memory 2)");
    let other = spawn(&rt, "(memory 2)");
    let (peer, port) = with_peer(&rt, &holder, "(memory 2)");
    other.put_pattern(P, P, 3);
    other.reset_outs();
    let (before, peer_before) = (other.snap(), peer.snap());
    assert_eq!(other.write(port, P, P, P), SEND_INVALID_DEST);
    assert_eq!(other.read(port, 0, P, A, B), SEND_INVALID_DEST);
    assert_eq!(other.allocate(port, A, P, 1), SEND_INVALID_DEST);
    assert_eq!(other.deallocate(port, 0, P), SEND_INVALID_DEST);
    assert_eq!(other.region(port, A, B, C, D), SEND_INVALID_DEST);
    other.assert_outs(&[]);
    assert_eq!(other.snap(), before);
    assert_eq!(peer.snap(), peer_before);
    // The holder's name does work.
    assert_eq!(holder.write(port, P, 0, P), SUCCESS);
}

/// Once the peer terminates, every call through its name is MACH_SEND_INVALID_DEST and
/// its registration is gone (KERN_INVALID_NAME).
#[test]
fn a_terminated_peer_is_send_invalid_dest() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 2)");
    let (peer, port) = with_peer(&rt, &g, "(memory 2)");
    assert_eq!(g.write(port, 0, 0, P), SUCCESS);
    peer.0.terminate();
    g.reset_outs();
    let before = g.snap();
    assert_eq!(g.write(port, 0, 0, P), SEND_INVALID_DEST);
    assert_eq!(g.read(port, 0, P, A, B), SEND_INVALID_DEST);
    assert_eq!(g.read(port, 0, 0, A, B), SEND_INVALID_DEST);
    assert_eq!(g.read_overwrite(port, 0, P, P, A), SEND_INVALID_DEST);
    assert_eq!(g.allocate(port, A, P, 1), SEND_INVALID_DEST);
    assert_eq!(g.deallocate(port, 0, P), SEND_INVALID_DEST);
    assert_eq!(g.protect(port, 0, P, 0, R), SEND_INVALID_DEST);
    assert_eq!(g.copy(port, 0, P, P), SEND_INVALID_DEST);
    assert_eq!(g.region(port, A, B, C, D), SEND_INVALID_DEST);
    assert_eq!(g.look_up(b"peer", A), INVALID_NAME);
    g.assert_outs(&[]);
    assert_eq!(g.snap().map, before.map);
}

// ======================================================================================
// vm_allocate
// ======================================================================================

/// Anywhere: first fit from page 0 (holes before growth), the start written
/// little-endian at the (unaligned) pointer, new pages DEFAULT/ALL and zero.
#[test]
fn allocate_anywhere_is_first_fit_and_writes_the_start() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    g.put_pattern(P, 3 * P, 1);
    g.free_pages(1, 1);
    g.free_pages(3, 1);
    g.reset_outs();
    // One page: the hole at page 1.
    assert_eq!(g.allocate(SELF, A, P, 1), SUCCESS);
    g.assert_outs(&[(A, P)]);
    // Two pages: no 2-page hole below page 3; pages 3..5, growing memory to 5 pages.
    assert_eq!(g.allocate(SELF, B, 2 * P, 1), SUCCESS);
    g.assert_outs(&[(A, P), (B, 3 * P)]);
    assert_eq!(g.size(), 5);
    // Another page: after everything, at page 5.
    assert_eq!(g.allocate(SELF, C, P, 1), SUCCESS);
    g.assert_outs(&[(A, P), (B, 3 * P), (C, 5 * P)]);
    assert_eq!(g.size(), 6);
    assert_eq!(g.map(), vec![(0, 6, RW, ALL)]);
    assert_eq!(g.bytes(P, P), zeros(P));
    assert_eq!(g.bytes(2 * P, P), pat(1, 3 * P, P, 2 * P));
    assert_eq!(g.bytes(3 * P, 3 * P), zeros(3 * P));
}

/// Anywhere: the size is rounded up to whole pages, the value at the pointer is ignored,
/// and any nonzero `anywhere` means anywhere.
#[test]
fn allocate_anywhere_rounds_the_size_up_and_ignores_the_in_value() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 2)");
    for (size, anywhere, want, pages) in [
        (1, 1, 2 * P, 3),
        (P + 1, -1, 3 * P, 5),
        (P - 1, 2, 5 * P, 6),
        (3 * P, i32::MIN, 6 * P, 9),
    ] {
        g.reset_outs();
        g.store(A, P); // page 1 is allocated: as a fixed request this would fail
        assert_eq!(g.allocate(SELF, A, size, anywhere), SUCCESS, "{size:#x}");
        g.assert_outs(&[(A, want)]);
        assert_eq!(g.size(), pages);
    }
    assert_eq!(g.map(), vec![(0, 9, RW, ALL)]);
}

/// Fixed: address rounded down and size rounded up, each on its own (at `A+1` with one
/// page the range is `[A, A+page)`); the rounded start is written back.
#[test]
fn allocate_fixed_rounds_address_and_size_separately() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    g.reset_outs();
    g.store(A, 5 * P + 1);
    assert_eq!(g.allocate(SELF, A, P, 0), SUCCESS);
    g.assert_outs(&[(A, 5 * P)]);
    assert_eq!(g.map(), vec![(0, 4, RW, ALL), (5, 1, RW, ALL)]);
    // [8P-1, 8P+1) as bytes, but the range is page 7 alone.
    g.store(A, 8 * P - 1);
    assert_eq!(g.allocate(SELF, A, 2, 0), SUCCESS);
    g.assert_outs(&[(A, 7 * P)]);
    assert_eq!(
        g.map(),
        vec![(0, 4, RW, ALL), (5, 1, RW, ALL), (7, 1, RW, ALL)]
    );
    assert_eq!(g.size(), 8);
    // Into a hole, exactly.
    g.free_pages(1, 2);
    g.store(A, 2 * P + 0x1234);
    assert_eq!(g.allocate(SELF, A, P - 0x1234, 0), SUCCESS);
    g.assert_outs(&[(A, 2 * P)]);
    assert_eq!(
        g.map(),
        vec![
            (0, 1, RW, ALL),
            (2, 2, RW, ALL),
            (5, 1, RW, ALL),
            (7, 1, RW, ALL)
        ]
    );
}

/// Fixed: any allocated page in the range is KERN_NO_SPACE, and the free pages of the
/// range stay free.
#[test]
fn allocate_fixed_over_an_allocated_page_is_no_space_and_changes_nothing() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    g.free_pages(2, 1);
    for (at, size) in [
        (2 * P, 2 * P),
        (P, P),
        (2 * P - 1, 2),
        (2 * P, 3 * P),
        (0, 4 * P),
    ] {
        g.reset_outs();
        g.store(A, at);
        let before = g.snap();
        assert_eq!(g.allocate(SELF, A, size, 0), NO_SPACE, "{at:#x}+{size:#x}");
        assert_eq!(g.snap(), before);
        assert_eq!(g.load(A), at);
    }
    assert_eq!(g.map(), vec![(0, 2, RW, ALL), (3, 1, RW, ALL)]);
}

/// Fixed: a range past the declared maximum or ending past 4 GiB is KERN_INVALID_ADDRESS
/// (also when it holds an allocated page); the last page of the space can be allocated.
#[test]
fn allocate_fixed_past_the_address_space_is_invalid_address() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4 8)");
    g.reset_outs();
    let before = g.snap();
    for (at, size) in [
        (7 * P, 2 * P),
        (8 * P, 1),
        (3 * P, 6 * P),
        (0xffff_0000, 2 * P),
        (0xffff_ffff, P),
        (4 * P, u32::MAX),
    ] {
        g.store(A, at);
        assert_eq!(
            g.allocate(SELF, A, size, 0),
            INVALID_ADDRESS,
            "{at:#x}+{size:#x}"
        );
        assert_eq!(g.load(A), at);
    }
    g.store(A, u32::from(FILL) * 0x0101_0101);
    assert_eq!(g.snap(), before);
    g.store(A, 7 * P);
    assert_eq!(g.allocate(SELF, A, P, 0), SUCCESS);
    assert_eq!(g.map(), vec![(0, 4, RW, ALL), (7, 1, RW, ALL)]);
    assert_eq!(g.size(), 8);

    // Without a declared maximum the space is 4 GiB: ending past it is an address error.
    let g = spawn(&rt, "(memory 4)");
    let before = g.map();
    for (at, size) in [
        (0xffff_0000, 2 * P),
        (0xffff_ffff, P + 1),
        (4 * P, u32::MAX),
    ] {
        g.store(A, at);
        assert_eq!(
            g.allocate(SELF, A, size, 0),
            INVALID_ADDRESS,
            "{at:#x}+{size:#x}"
        );
        assert_eq!(g.load(A), at);
    }
    assert_eq!(g.map(), before);
    assert_eq!(g.size(), 4);
}

/// Fixed: the in-pointer must be 4 readable and writable bytes of the caller, else
/// KERN_INVALID_ARGUMENT, checked before the range.
#[test]
fn allocate_fixed_bad_in_pointer_is_invalid_argument_before_the_range() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    // Each candidate pointer holds a free, valid address (page 6).
    for at in [P + 8, 2 * P + 8, 3 * P + 8] {
        g.store(at, 6 * P);
    }
    g.set_cur(1, 1, W);
    g.free_pages(2, 1);
    g.set_cur(3, 1, R);
    let before = g.snap();
    for ptr in [P + 8, 2 * P + 8, 3 * P + 8, 4 * P - 2, 0xffff_fffe] {
        for size in [P, u32::MAX] {
            assert_eq!(g.allocate(SELF, ptr, size, 0), INVALID_ARGUMENT, "{ptr:#x}");
        }
    }
    assert_eq!(g.snap(), before);
}

/// Anywhere: the out-pointer is checked (step 5) before space (step 6); a write-only page
/// is a fine out-pointer; without room, KERN_NO_SPACE writes nothing.
#[test]
fn allocate_anywhere_checks_the_out_pointer_before_space() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4 4)");
    g.set_cur(2, 1, W);
    g.set_cur(3, 1, R);
    g.reset_outs();
    let before = g.snap();
    for ptr in [3 * P + 8, 4 * P - 2, 0xffff_fffc] {
        assert_eq!(g.allocate(SELF, ptr, P, 1), INVALID_ARGUMENT, "{ptr:#x}");
    }
    assert_eq!(g.allocate(SELF, A, P, 1), NO_SPACE);
    assert_eq!(g.allocate(SELF, 2 * P + 8, P, 1), NO_SPACE);
    g.assert_outs(&[]);
    assert_eq!(g.snap(), before);

    // With room, the write-only out-pointer receives the address.
    let g = spawn(&rt, "(memory 4)");
    g.set_cur(2, 1, W);
    assert_eq!(g.allocate(SELF, 2 * P + 8, P, 1), SUCCESS);
    assert_eq!(g.load(2 * P + 8), 4 * P);
}

/// Size 0 succeeds right after the port check whatever the address, writes address 0,
/// and changes no map entry; the pointer must still be valid.
#[test]
fn allocate_size_zero_writes_address_zero() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4 4)");
    g.set_cur(3, 1, R);
    let map = g.map();
    for (at, anywhere) in [(5 * P + 7, 0), (5 * P + 7, 1), (P, 0), (0xffff_ffff, 0)] {
        g.reset_outs();
        g.store(A, at);
        assert_eq!(g.allocate(SELF, A, 0, anywhere), SUCCESS, "{at:#x}");
        g.assert_outs(&[(A, 0)]);
    }
    assert_eq!(g.map(), map);
    assert_eq!(g.size(), 4);
    g.reset_outs();
    let before = g.snap();
    for ptr in [3 * P + 8, 4 * P - 2, 0xffff_fffe] {
        assert_eq!(g.allocate(SELF, ptr, 0, 1), INVALID_ARGUMENT, "{ptr:#x}");
        assert_eq!(g.allocate(SELF, ptr, 0, 0), INVALID_ARGUMENT, "{ptr:#x}");
    }
    assert_eq!(g.snap(), before);
}

/// Allocation beyond the current memory size grows the memory (`memory.size` in the
/// guest); the pages skipped over stay unallocated and first fit finds them later.
#[test]
fn allocate_beyond_memory_grows_it_and_skipped_pages_stay_unallocated() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 2)");
    assert_eq!(g.size(), 2);
    g.reset_outs();
    g.store(A, 5 * P);
    assert_eq!(g.allocate(SELF, A, P, 0), SUCCESS);
    assert_eq!(g.size(), 6);
    assert_eq!(g.memory_pages(), 6);
    assert_eq!(g.map(), vec![(0, 2, RW, ALL), (5, 1, RW, ALL)]);
    assert_eq!(g.bytes(5 * P, P), zeros(P));
    assert_eq!(g.vm_read(2 * P, P), Err(KernReturn::InvalidAddress));
    // The guest can use the new page with its own loads and stores.
    g.store(5 * P + 100, 0x1234_5678);
    assert_eq!(g.load(5 * P + 100), 0x1234_5678);
    // First fit takes the skipped pages; memory does not grow.
    assert_eq!(g.allocate(SELF, B, 3 * P, 1), SUCCESS);
    g.assert_outs(&[(A, 5 * P), (B, 2 * P)]);
    assert_eq!(g.size(), 6);
    assert_eq!(g.map(), vec![(0, 6, RW, ALL)]);
}

/// The guest's own `memory.grow` pages become allocated with DEFAULT/ALL (pages the
/// kernel skipped stay unallocated); a grow past the maximum fails and changes nothing.
#[test]
fn guest_memory_grow_pages_are_allocated_default_all() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 2 12)");
    g.free_pages(1, 1);
    assert_eq!(g.grow(2), 2);
    assert_eq!(g.size(), 4);
    assert_eq!(g.map(), vec![(0, 1, RW, ALL), (2, 2, RW, ALL)]);
    assert_eq!(g.bytes(2 * P, 2 * P), zeros(2 * P));
    g.store(A, 6 * P);
    assert_eq!(g.allocate(SELF, A, P, 0), SUCCESS);
    assert_eq!(g.grow(1), 7);
    assert_eq!(
        g.map(),
        vec![(0, 1, RW, ALL), (2, 2, RW, ALL), (6, 2, RW, ALL)]
    );
    // Calls act on grown pages like on any other.
    g.put_pattern(7 * P, P, 4);
    assert_eq!(g.copy(SELF, 7 * P, P, 2 * P), SUCCESS);
    assert_eq!(g.bytes(2 * P, P), gpat(4, P as usize));
    let before = g.snap();
    assert_eq!(g.grow(5), -1);
    assert_eq!(g.snap(), before);
}

/// Rule 7: reallocated pages read as zero, also after the guest wrote them both while
/// allocated and while unallocated (its own stores are not bound by the table).
#[test]
fn allocate_zero_fills_pages_the_guest_wrote_before() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    g.put_pattern(P, 3 * P, 9);
    assert_eq!(g.deallocate(SELF, 2 * P, P), SUCCESS);
    g.put_pattern(2 * P, P, 11); // a store into the unallocated page
    g.store(A, 2 * P);
    assert_eq!(g.allocate(SELF, A, P, 0), SUCCESS);
    assert_eq!(g.bytes(2 * P, P), zeros(P));
    assert_eq!(g.load(2 * P + 64), 0);
    // Anywhere: first fit lands on the freed page 1, which must read zero too.
    assert_eq!(g.deallocate(SELF, P, P), SUCCESS);
    g.put_pattern(P, P, 13);
    assert_eq!(g.allocate(SELF, A, P, 1), SUCCESS);
    assert_eq!(g.load(A), P);
    assert_eq!(g.bytes(P, P), zeros(P));
    // The neighbour that stayed allocated kept its bytes.
    assert_eq!(g.bytes(3 * P, P), pat(9, 3 * P, 2 * P, 3 * P));
}

/// vm_allocate in a peer grows the peer; the address goes to the caller's memory.
#[test]
fn allocate_in_a_peer_grows_the_peer_and_writes_the_address_in_the_caller() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 1)");
    let (peer, port) = with_peer(&rt, &g, "(memory 1)");
    g.reset_outs();
    let peer_page0 = peer.bytes(0, P);
    assert_eq!(g.allocate(port, A, 2 * P, 1), SUCCESS);
    g.assert_outs(&[(A, P)]);
    assert_eq!(peer.memory_pages(), 3);
    assert_eq!(peer.size(), 3);
    assert_eq!(peer.map(), vec![(0, 3, RW, ALL)]);
    assert_eq!(peer.bytes(0, P), peer_page0);
    g.store(A, 5 * P);
    assert_eq!(g.allocate(port, A, 1, 0), SUCCESS);
    g.assert_outs(&[(A, 5 * P)]);
    assert_eq!(peer.map(), vec![(0, 3, RW, ALL), (5, 1, RW, ALL)]);
    assert_eq!(peer.bytes(5 * P, P), zeros(P));
    // The caller's own map and memory did not change.
    assert_eq!(g.map(), vec![(0, 1, RW, ALL)]);
    assert_eq!(g.size(), 1);
}

/// Over the memory quota is KERN_NO_SPACE (after the pointer checks), and so is
/// `memory.grow` (-1); freeing pages makes room again.
#[test]
fn allocate_over_the_memory_quota_is_no_space() {
    let rt = runtime();
    let g = spawn_quota(&rt, "(memory 4)", 6);
    g.reset_outs();
    g.store(B, 4 * P);
    let before = g.snap();
    assert_eq!(g.allocate(SELF, A, 3 * P, 1), NO_SPACE);
    assert_eq!(g.allocate(SELF, B, 3 * P, 0), NO_SPACE);
    assert_eq!(g.allocate(SELF, 0xffff_fffe, 3 * P, 1), INVALID_ARGUMENT);
    assert_eq!(g.snap(), before);
    assert_eq!(g.allocate(SELF, A, 2 * P, 1), SUCCESS);
    assert_eq!(g.load(A), 4 * P);
    assert_eq!(g.grow(1), -1);
    assert_eq!(g.allocate(SELF, A, 1, 1), NO_SPACE);
    assert_eq!(g.load(A), 4 * P);
    assert_eq!(g.deallocate(SELF, P, P), SUCCESS);
    assert_eq!(g.allocate(SELF, A, 1, 1), SUCCESS);
    assert_eq!(g.load(A), P);
    assert_eq!(g.map(), vec![(0, 6, RW, ALL)]);
}

// ======================================================================================
// vm_deallocate
// ======================================================================================

/// The address is rounded down and the end up; unallocated pages are skipped; success
/// even where nothing is allocated (also past the memory size and the declared maximum).
#[test]
fn deallocate_frees_the_rounded_range_and_skips_holes() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 8 16)");
    assert_eq!(g.deallocate(SELF, P + 1, 1), SUCCESS);
    assert_eq!(g.map(), vec![(0, 1, RW, ALL), (2, 6, RW, ALL)]);
    assert_eq!(g.deallocate(SELF, 3 * P - 1, 2), SUCCESS);
    assert_eq!(g.map(), vec![(0, 1, RW, ALL), (4, 4, RW, ALL)]);
    assert_eq!(g.deallocate(SELF, P, 6 * P), SUCCESS);
    assert_eq!(g.map(), vec![(0, 1, RW, ALL), (7, 1, RW, ALL)]);
    assert_eq!(g.deallocate(SELF, 2 * P, 3 * P), SUCCESS);
    assert_eq!(g.deallocate(SELF, 20 * P, 5 * P), SUCCESS);
    assert_eq!(g.deallocate(SELF, 7 * P, 100 * P), SUCCESS);
    assert_eq!(g.map(), vec![(0, 1, RW, ALL)]);
    assert_eq!(g.size(), 8);
    assert_eq!(g.vm_read(P, P), Err(KernReturn::InvalidAddress));
}

/// Deallocation needs no protection: pages with cur NONE or max NONE are freed, and a
/// reallocated page starts afresh with DEFAULT/ALL.
#[test]
fn deallocate_ignores_protections() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    g.set_max(1, 1, NONE);
    g.set_cur(2, 1, NONE);
    assert_eq!(g.deallocate(SELF, P, 2 * P), SUCCESS);
    assert_eq!(g.map(), vec![(0, 1, RW, ALL), (3, 1, RW, ALL)]);
    g.store(A, P);
    assert_eq!(g.allocate(SELF, A, P, 0), SUCCESS);
    assert_eq!(g.map(), vec![(0, 2, RW, ALL), (3, 1, RW, ALL)]);
}

/// A range ending past 4 GiB is KERN_INVALID_ARGUMENT and frees nothing; one ending
/// exactly at 4 GiB is fine.
#[test]
fn deallocate_range_past_4gib_is_invalid_argument_and_changes_nothing() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    g.put_pattern(P, 3 * P, 5);
    let before = g.snap();
    for (at, size) in [
        (P, u32::MAX),
        (0xffff_0001, P),
        (0xffff_ffff, 2),
        (P + 1, u32::MAX),
    ] {
        assert_eq!(
            g.deallocate(SELF, at, size),
            INVALID_ARGUMENT,
            "{at:#x}+{size:#x}"
        );
    }
    assert_eq!(g.snap(), before);
    assert_eq!(g.deallocate(SELF, 2 * P, 0u32.wrapping_sub(2 * P)), SUCCESS);
    assert_eq!(g.map(), vec![(0, 2, RW, ALL)]);
    assert_eq!(g.deallocate(SELF, 0xffff_0000, P), SUCCESS);

    // The same with a declared maximum: past 4 GiB is still an argument error.
    let g = spawn(&rt, "(memory 4 8)");
    let before = g.snap();
    assert_eq!(g.deallocate(SELF, P, u32::MAX), INVALID_ARGUMENT);
    assert_eq!(g.snap(), before);
    assert_eq!(g.deallocate(SELF, 3 * P, 0xffff_0000 - 3 * P), SUCCESS);
    assert_eq!(g.map(), vec![(0, 3, RW, ALL)]);
}

/// Size 0 succeeds whatever the address and frees nothing.
#[test]
fn deallocate_size_zero_is_success_and_frees_nothing() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    let before = g.snap();
    for at in [0, P + 3, 0xffff_ffff, 100 * P] {
        assert_eq!(g.deallocate(SELF, at, 0), SUCCESS, "{at:#x}");
    }
    assert_eq!(g.snap(), before);
}

// ======================================================================================
// vm_protect
// ======================================================================================

/// `set_maximum == 0` sets cur to any protection within max (raising it back up too), and
/// the table binds host paths afterwards.
#[test]
fn protect_sets_the_current_protection_within_max() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    assert_eq!(g.protect(SELF, P, P, 0, R), SUCCESS);
    assert_eq!(
        g.map(),
        vec![(0, 1, RW, ALL), (1, 1, R, ALL), (2, 2, RW, ALL)]
    );
    assert_eq!(g.vm_write(P, &zeros(P)), Err(KernReturn::ProtectionFailure));
    for prot in [ALL, NONE, X, W, R | X] {
        assert_eq!(g.protect(SELF, P, P, 0, prot), SUCCESS, "{prot}");
        assert_eq!(g.map()[1], (1, 1, prot, ALL));
    }
    assert_eq!(g.protect(SELF, P, P, 0, RW), SUCCESS);
    assert_eq!(g.map(), vec![(0, 4, RW, ALL)]);
}

/// `set_maximum != 0` sets max and masks cur with it (`cur &= new`).
#[test]
fn protect_set_maximum_lowers_max_and_masks_cur() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 5)");
    g.set_cur(4, 1, R | X);
    assert_eq!(g.protect(SELF, P, P, 1, R), SUCCESS);
    assert_eq!(g.protect(SELF, 2 * P, P, -1, W | X), SUCCESS);
    assert_eq!(g.protect(SELF, 3 * P, P, 2, ALL), SUCCESS);
    assert_eq!(g.protect(SELF, 4 * P, P, i32::MIN, RW), SUCCESS);
    assert_eq!(
        g.map(),
        vec![
            (0, 1, RW, ALL),
            (1, 1, R, R),
            (2, 1, W, W | X),
            (3, 1, RW, ALL),
            (4, 1, R, RW)
        ]
    );
}

/// A maximum can only be lowered: asking for a protection outside max is
/// KERN_PROTECTION_FAILURE (as cur or as max) and changes nothing.
#[test]
fn protect_beyond_max_is_protection_failure_and_changes_nothing() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    g.set_max(1, 1, R);
    g.set_max(2, 1, NONE);
    let before = g.snap();
    for (page, prot) in [(1, W), (1, RW), (1, X), (2, R), (2, ALL)] {
        assert_eq!(g.protect(SELF, page * P, P, 0, prot), PROTECTION_FAILURE);
        assert_eq!(g.protect(SELF, page * P, P, 1, prot), PROTECTION_FAILURE);
    }
    assert_eq!(g.snap(), before);
    // Lowering cur and raising it back within max is allowed.
    assert_eq!(g.protect(SELF, P, P, 0, NONE), SUCCESS);
    assert_eq!(g.protect(SELF, P, P, 0, R), SUCCESS);
    assert_eq!(g.protect(SELF, 2 * P, P, 1, NONE), SUCCESS);
    assert_eq!(g.snap(), before);
}

/// The address is rounded down and the end up to pages.
#[test]
fn protect_rounds_the_address_down_and_the_end_up() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 5)");
    assert_eq!(g.protect(SELF, P + 1, 1, 0, R), SUCCESS);
    assert_eq!(
        g.map(),
        vec![(0, 1, RW, ALL), (1, 1, R, ALL), (2, 3, RW, ALL)]
    );
    assert_eq!(g.protect(SELF, 3 * P - 1, 2, 0, NONE), SUCCESS);
    assert_eq!(
        g.map(),
        vec![
            (0, 1, RW, ALL),
            (1, 1, R, ALL),
            (2, 2, NONE, ALL),
            (4, 1, RW, ALL)
        ]
    );
}

/// vm_protect checks the whole range for unallocated pages before checking any max: an
/// unallocated page after a max-lacking page gives KERN_INVALID_ADDRESS; a max-lacking
/// page after good ones gives KERN_PROTECTION_FAILURE; neither changes a page.
#[test]
fn protect_checks_the_whole_range_for_holes_before_max() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    g.set_max(1, 1, R);
    g.free_pages(3, 1);
    let before = g.snap();
    assert_eq!(g.protect(SELF, P, 3 * P, 0, W), INVALID_ADDRESS);
    assert_eq!(g.protect(SELF, 0, 4 * P, 1, W), INVALID_ADDRESS);
    assert_eq!(g.protect(SELF, 2 * P, 2 * P, 0, R), INVALID_ADDRESS);
    assert_eq!(g.protect(SELF, 0, 2 * P, 0, W), PROTECTION_FAILURE);
    assert_eq!(g.protect(SELF, 0, 2 * P, 1, W), PROTECTION_FAILURE);
    assert_eq!(g.snap(), before);
    assert_eq!(g.protect(SELF, 0, 3 * P, 0, NONE), SUCCESS);
    assert_eq!(
        g.map(),
        vec![(0, 1, NONE, ALL), (1, 1, NONE, R), (2, 1, NONE, ALL)]
    );
    assert_eq!(g.protect(SELF, 0, 3 * P, 0, RW), PROTECTION_FAILURE);
    assert_eq!(
        g.map(),
        vec![(0, 1, NONE, ALL), (1, 1, NONE, R), (2, 1, NONE, ALL)]
    );
    assert_eq!(g.snap().sum, before.sum);
}

/// Bits outside ALL are KERN_INVALID_ARGUMENT before anything else (holes, wrap, size 0).
#[test]
fn protect_bad_bits_are_invalid_argument_first() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    g.free_pages(2, 1);
    let before = g.snap();
    for bits in [8, 0xf, 0x10, 0x8000_0000, u32::MAX] {
        for set_max in [0, 1] {
            for (at, size) in [(P, P), (2 * P, P), (P, 0), (P, u32::MAX), (0xffff_0000, P)] {
                assert_eq!(
                    g.protect(SELF, at, size, set_max, bits),
                    INVALID_ARGUMENT,
                    "{bits:#x} {at:#x}+{size:#x}"
                );
            }
        }
    }
    assert_eq!(g.snap(), before);
}

/// A range ending past 4 GiB is KERN_INVALID_ARGUMENT; a range past the declared maximum
/// but inside 4 GiB is KERN_INVALID_ADDRESS.
#[test]
fn protect_range_past_4gib_is_invalid_argument() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4 8)");
    let before = g.snap();
    for (at, size) in [(P, u32::MAX), (0xffff_0001, P), (0xffff_ffff, 2)] {
        assert_eq!(g.protect(SELF, at, size, 0, R), INVALID_ARGUMENT, "{at:#x}");
        assert_eq!(g.protect(SELF, at, size, 1, R), INVALID_ARGUMENT, "{at:#x}");
    }
    for (at, size) in [(0xffff_0000, P), (3 * P, 6 * P), (8 * P, 1)] {
        assert_eq!(g.protect(SELF, at, size, 0, R), INVALID_ADDRESS, "{at:#x}");
    }
    assert_eq!(g.snap(), before);
}

/// Size 0 succeeds after the bits check whatever the address, and changes nothing.
#[test]
fn protect_size_zero_succeeds_and_changes_nothing() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    g.set_max(1, 1, R);
    let before = g.snap();
    for (at, set_max, prot) in [
        (0xffff_ffff, 0, R),
        (2 * P + 5, 1, NONE),
        (P, 0, ALL),
        (100 * P, 1, ALL),
    ] {
        assert_eq!(g.protect(SELF, at, 0, set_max, prot), SUCCESS, "{at:#x}");
    }
    assert_eq!(g.snap(), before);
}

/// vm_protect on a peer changes the peer's map, not the caller's.
#[test]
fn protect_a_peer() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 2)");
    let (peer, port) = with_peer(&rt, &g, "(memory 3)");
    assert_eq!(g.protect(port, P, P, 1, R), SUCCESS);
    assert_eq!(
        peer.map(),
        vec![(0, 1, RW, ALL), (1, 1, R, R), (2, 1, RW, ALL)]
    );
    assert_eq!(g.protect(port, P, P, 0, W), PROTECTION_FAILURE);
    assert_eq!(g.protect(port, 3 * P, P, 0, R), INVALID_ADDRESS);
    assert_eq!(g.map(), vec![(0, 2, RW, ALL)]);
}

// ======================================================================================
// vm_read
// ======================================================================================

/// vm_read copies exactly, into a new first-fit DEFAULT/ALL region of the caller (a hole,
/// or past the end, growing memory), and writes address and count little-endian.
#[test]
fn read_copies_into_a_new_first_fit_region_and_writes_address_and_count() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    let (peer, port) = with_peer(&rt, &g, "(memory 4)");
    peer.put_pattern(P, 3 * P, 5);
    g.free_pages(1, 1);
    g.put_pattern(2 * P, 2 * P, 77);
    g.reset_outs();
    let peer_before = peer.snap();
    assert_eq!(g.read(port, P, P, A, B), SUCCESS);
    g.assert_outs(&[(A, P), (B, P)]);
    assert_eq!(g.bytes(P, P), pat(5, 3 * P, 0, P));
    assert_eq!(g.read(port, 2 * P, 2 * P, C, D), SUCCESS);
    g.assert_outs(&[(A, P), (B, P), (C, 4 * P), (D, 2 * P)]);
    assert_eq!(g.size(), 6);
    assert_eq!(g.bytes(4 * P, 2 * P), pat(5, 3 * P, P, 3 * P));
    assert_eq!(g.map(), vec![(0, 6, RW, ALL)]);
    // The caller's other pages and the whole source are unchanged.
    assert_eq!(g.bytes(2 * P, 2 * P), gpat(77, 2 * P as usize));
    assert_eq!(peer.snap(), peer_before);
}

/// A read-only (max READ) or READ|EXECUTE source can be read; the copy is a fresh
/// DEFAULT/ALL region whatever the source's protections.
#[test]
fn read_needs_only_read_and_the_copy_is_default() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 1)");
    let (peer, port) = with_peer(&rt, &g, "(memory 3)");
    peer.put_pattern(P, 2 * P, 8);
    peer.set_max(1, 1, R);
    peer.set_cur(2, 1, R | X);
    assert_eq!(g.read(port, P, 2 * P, A, B), SUCCESS);
    assert_eq!(g.load(A), P);
    assert_eq!(g.map(), vec![(0, 3, RW, ALL)]);
    assert_eq!(g.bytes(P, 2 * P), gpat(8, 2 * P as usize));
}

/// A task can vm_read itself through mach_task_self.
#[test]
fn read_of_itself() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    g.put_pattern(P, 2 * P, 3);
    g.reset_outs();
    assert_eq!(g.read(SELF, P, 2 * P, A, B), SUCCESS);
    g.assert_outs(&[(A, 4 * P), (B, 2 * P)]);
    assert_eq!(g.bytes(4 * P, 2 * P), gpat(3, 2 * P as usize));
    assert_eq!(g.bytes(P, 2 * P), gpat(3, 2 * P as usize));
}

/// Misaligned address or size is KERN_INVALID_ARGUMENT before the range is looked at.
#[test]
fn read_misaligned_is_invalid_argument_before_the_range() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 2)");
    let (peer, port) = with_peer(&rt, &g, "(memory 2)");
    g.reset_outs();
    let (before, peer_before) = (g.snap(), peer.snap());
    for (at, size) in [
        (P + 1, P),
        (P, P + 1),
        (0, 1),
        (100 * P + 8, P),
        (100 * P, 3),
    ] {
        assert_eq!(
            g.read(port, at, size, A, B),
            INVALID_ARGUMENT,
            "{at:#x}+{size:#x}"
        );
        assert_eq!(
            g.read(SELF, at, size, A, B),
            INVALID_ARGUMENT,
            "{at:#x}+{size:#x}"
        );
    }
    assert_eq!(g.snap(), before);
    assert_eq!(peer.snap(), peer_before);
}

/// The first offending page of the source, in address order, decides between
/// KERN_INVALID_ADDRESS and KERN_PROTECTION_FAILURE (cur without READ, write-only too).
#[test]
fn read_first_offending_page_decides() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 1)");
    let (peer, port) = with_peer(&rt, &g, "(memory 4)");
    peer.set_cur(1, 1, NONE);
    peer.free_pages(2, 1);
    peer.set_cur(3, 1, W | X);
    g.reset_outs();
    let (before, peer_before) = (g.snap(), peer.snap());
    for (at, size, want) in [
        (0, 3 * P, PROTECTION_FAILURE),
        (0, 4 * P, PROTECTION_FAILURE),
        (2 * P, 2 * P, INVALID_ADDRESS),
        (3 * P, P, PROTECTION_FAILURE),
        (3 * P, 2 * P, PROTECTION_FAILURE),
        (4 * P, P, INVALID_ADDRESS),
    ] {
        assert_eq!(g.read(port, at, size, A, B), want, "{at:#x}+{size:#x}");
    }
    assert_eq!(g.snap(), before);
    assert_eq!(peer.snap(), peer_before);
}

/// A source past the declared maximum, or ending past 4 GiB, is KERN_INVALID_ADDRESS.
#[test]
fn read_past_the_address_space_is_invalid_address() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 1)");
    let (_peer, port) = with_peer(&rt, &g, "(memory 4 8)");
    g.reset_outs();
    let before = g.snap();
    for (at, size) in [
        (4 * P, 8 * P),
        (6 * P, 4 * P),
        (0, 9 * P),
        (0xffff_0000, 2 * P),
        (0xffff_0000, P),
        (P, 0xffff_0000),
    ] {
        assert_eq!(
            g.read(port, at, size, A, B),
            INVALID_ADDRESS,
            "{at:#x}+{size:#x}"
        );
    }
    assert_eq!(g.snap(), before);
}

/// The source range is checked (step 4) before the out-pointers (step 5).
#[test]
fn read_checks_the_source_before_the_out_pointers() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 1)");
    let (peer, port) = with_peer(&rt, &g, "(memory 3)");
    peer.set_cur(1, 1, NONE);
    peer.free_pages(2, 1);
    let before = g.snap();
    assert_eq!(g.read(port, 2 * P, P, 0xffff_fffe, 3 * P), INVALID_ADDRESS);
    assert_eq!(g.read(port, P, P, 0xffff_fffe, 3 * P), PROTECTION_FAILURE);
    assert_eq!(g.snap(), before);
}

/// Out-pointers that are not 4 writable bytes (unallocated, read-only, straddling the end
/// of memory or 4 GiB) are KERN_INVALID_ARGUMENT; no region is allocated, nothing written.
#[test]
fn read_bad_out_pointers_are_invalid_argument_and_allocate_nothing() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    let (_peer, port) = with_peer(&rt, &g, "(memory 3)");
    g.free_pages(2, 1);
    g.set_cur(3, 1, R);
    g.reset_outs();
    let before = g.snap();
    for (data_ptr, count_ptr) in [
        (2 * P + 4, B),
        (A, 2 * P + 4),
        (3 * P + 4, B),
        (A, 3 * P + 4),
        (A, 4 * P - 2),
        (4 * P - 3, B),
        (0xffff_fffe, B),
        (A, 0xffff_fffc),
    ] {
        assert_eq!(
            g.read(port, 0, 2 * P, data_ptr, count_ptr),
            INVALID_ARGUMENT,
            "{data_ptr:#x} {count_ptr:#x}"
        );
    }
    g.assert_outs(&[]);
    assert_eq!(g.snap(), before);
}

/// No room in the caller is KERN_NO_SPACE (full space or quota), after the pointer check.
#[test]
fn read_without_room_in_the_caller_is_no_space() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4 4)");
    let (_peer, port) = with_peer(&rt, &g, "(memory 3)");
    g.set_cur(3, 1, R);
    g.reset_outs();
    let before = g.snap();
    assert_eq!(g.read(port, 0, P, A, B), NO_SPACE);
    assert_eq!(g.read(port, 0, P, A, 3 * P), INVALID_ARGUMENT);
    g.assert_outs(&[]);
    assert_eq!(g.snap(), before);

    // A quota of 5 pages leaves room for one page.
    let g = spawn_quota(&rt, "(memory 4)", 5);
    let (_peer, port) = with_peer(&rt, &g, "(memory 3)");
    g.reset_outs();
    let before = g.snap();
    assert_eq!(g.read(port, 0, 2 * P, A, B), NO_SPACE);
    g.assert_outs(&[]);
    assert_eq!(g.snap(), before);
    assert_eq!(g.read(port, 0, P, A, B), SUCCESS);
    g.assert_outs(&[(A, 4 * P), (B, P)]);
}

/// Size 0 succeeds right after the port check (any address, even misaligned or
/// unallocated) and writes data address 0 and count 0; the pointers must still be valid.
#[test]
fn read_size_zero_writes_zero_and_zero() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    let (_peer, port) = with_peer(&rt, &g, "(memory 1)");
    g.set_cur(3, 1, R);
    let map = g.map();
    for (p, at) in [(port, 5 * P + 3), (port, 0), (SELF, 0xffff_ffff), (SELF, P)] {
        g.reset_outs();
        assert_eq!(g.read(p, at, 0, A, B), SUCCESS, "{at:#x}");
        g.assert_outs(&[(A, 0), (B, 0)]);
    }
    assert_eq!(g.map(), map);
    g.reset_outs();
    let before = g.snap();
    assert_eq!(g.read(port, 0, 0, A, 3 * P), INVALID_ARGUMENT);
    assert_eq!(g.read(port, 0, 0, 4 * P - 2, B), INVALID_ARGUMENT);
    assert_eq!(g.snap(), before);
}

// ======================================================================================
// vm_read_overwrite
// ======================================================================================

/// Copies the peer's bytes exactly into the caller's range (a write-only page is a fine
/// destination), writes the size, and keeps the destination's protections.
#[test]
fn read_overwrite_copies_and_writes_the_size() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    let (peer, port) = with_peer(&rt, &g, "(memory 4)");
    peer.put_pattern(P, 2 * P, 21);
    g.put_pattern(P, 3 * P, 1);
    g.set_cur(2, 1, W);
    g.reset_outs();
    let peer_before = peer.snap();
    assert_eq!(g.read_overwrite(port, P, 2 * P, P, A), SUCCESS);
    g.assert_outs(&[(A, 2 * P)]);
    assert_eq!(
        g.map(),
        vec![(0, 2, RW, ALL), (2, 1, W, ALL), (3, 1, RW, ALL)]
    );
    g.set_cur(2, 1, RW);
    assert_eq!(g.bytes(P, 2 * P), gpat(21, 2 * P as usize));
    assert_eq!(g.bytes(3 * P, P), pat(1, 3 * P, 2 * P, 3 * P));
    assert_eq!(peer.snap(), peer_before);
}

/// Target and caller may be the same task: overlapping ranges behave as memmove, both
/// directions.
#[test]
fn read_overwrite_of_itself_overlapping_is_memmove() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 6)");
    g.put_pattern(P, 3 * P, 1);
    assert_eq!(g.read_overwrite(SELF, P, 3 * P, 2 * P, A), SUCCESS);
    assert_eq!(g.load(A), 3 * P);
    assert_eq!(g.bytes(P, P), pat(1, 3 * P, 0, P));
    assert_eq!(g.bytes(2 * P, 3 * P), gpat(1, 3 * P as usize));

    let g = spawn(&rt, "(memory 6)");
    g.put_pattern(2 * P, 3 * P, 2);
    assert_eq!(g.read_overwrite(SELF, 2 * P, 3 * P, P, A), SUCCESS);
    assert_eq!(g.bytes(P, 3 * P), gpat(2, 3 * P as usize));
    assert_eq!(g.bytes(4 * P, P), pat(2, 3 * P, 2 * P, 3 * P));
}

/// Address, size or destination not page-aligned is KERN_INVALID_ARGUMENT, before the
/// ranges and the out-pointer.
#[test]
fn read_overwrite_misaligned_is_invalid_argument() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    let (peer, port) = with_peer(&rt, &g, "(memory 4)");
    g.free_pages(2, 1);
    g.reset_outs();
    let (before, peer_before) = (g.snap(), peer.snap());
    for (at, size, data) in [
        (P + 1, P, P),
        (P, P + 1, P),
        (P, P, P + 1),
        (100 * P + 4, P, 2 * P),
        (100 * P, 4, 2 * P),
        (100 * P, P, 2 * P + 4),
    ] {
        for out in [A, 2 * P] {
            assert_eq!(
                g.read_overwrite(port, at, size, data, out),
                INVALID_ARGUMENT,
                "{at:#x}+{size:#x} -> {data:#x}"
            );
        }
    }
    g.assert_outs(&[]);
    assert_eq!(g.snap(), before);
    assert_eq!(peer.snap(), peer_before);
}

/// The target range is checked before the caller's destination range.
#[test]
fn read_overwrite_checks_the_target_before_the_destination() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    let (peer, port) = with_peer(&rt, &g, "(memory 4)");
    peer.set_cur(1, 1, NONE);
    peer.free_pages(2, 1);
    g.free_pages(2, 1);
    g.set_cur(3, 1, R);
    g.reset_outs();
    let (before, peer_before) = (g.snap(), peer.snap());
    assert_eq!(g.read_overwrite(port, 2 * P, P, 3 * P, A), INVALID_ADDRESS);
    assert_eq!(g.read_overwrite(port, P, P, 2 * P, A), PROTECTION_FAILURE);
    assert_eq!(
        g.read_overwrite(port, 0, 2 * P, 2 * P, 0xffff_fffe),
        PROTECTION_FAILURE
    );
    g.assert_outs(&[]);
    assert_eq!(g.snap(), before);
    assert_eq!(peer.snap(), peer_before);
}

/// In the destination the first offending page decides (unallocated or past 4 GiB:
/// KERN_INVALID_ADDRESS; without WRITE: KERN_PROTECTION_FAILURE), and no byte is written,
/// not even to the good pages before it.
#[test]
fn read_overwrite_destination_first_offending_page_decides() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 6)");
    let (peer, port) = with_peer(&rt, &g, "(memory 4)");
    peer.put_pattern(0, 4 * P, 3);
    g.put_pattern(P, 5 * P, 4);
    g.set_cur(2, 1, R);
    g.free_pages(3, 1);
    g.set_cur(4, 1, NONE);
    g.reset_outs();
    let before = g.snap();
    for (data, size, want) in [
        (P, 3 * P, PROTECTION_FAILURE),
        (P, 2 * P, PROTECTION_FAILURE),
        (3 * P, 2 * P, INVALID_ADDRESS),
        (4 * P, P, PROTECTION_FAILURE),
        (5 * P, 2 * P, INVALID_ADDRESS),
        (6 * P, P, INVALID_ADDRESS),
        (0xffff_0000, 2 * P, INVALID_ADDRESS),
    ] {
        assert_eq!(
            g.read_overwrite(port, 0, size, data, A),
            want,
            "{data:#x}+{size:#x}"
        );
    }
    g.assert_outs(&[]);
    assert_eq!(g.snap(), before);
}

/// The destination range is checked before `out_size_ptr`; a bad `out_size_ptr` is
/// KERN_INVALID_ARGUMENT and no destination byte is written.
#[test]
fn read_overwrite_checks_the_destination_before_the_out_pointer() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    let (peer, port) = with_peer(&rt, &g, "(memory 2)");
    peer.put_pattern(0, 2 * P, 6);
    g.put_pattern(P, P, 7);
    g.free_pages(2, 1);
    g.set_cur(3, 1, R);
    g.reset_outs();
    let before = g.snap();
    assert_eq!(g.read_overwrite(port, 0, P, 2 * P, 3 * P), INVALID_ADDRESS);
    assert_eq!(
        g.read_overwrite(port, 0, P, 3 * P, 2 * P),
        PROTECTION_FAILURE
    );
    for out in [2 * P + 4, 3 * P + 4, 4 * P - 2, 0xffff_fffe] {
        assert_eq!(
            g.read_overwrite(port, 0, P, P, out),
            INVALID_ARGUMENT,
            "{out:#x}"
        );
    }
    g.assert_outs(&[]);
    assert_eq!(g.snap(), before);
    assert_eq!(g.bytes(P, P), gpat(7, P as usize));
}

/// Size 0 succeeds right after the port check and writes size 0; the pointer must be
/// valid.
#[test]
fn read_overwrite_size_zero_writes_size_zero() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    let (_peer, port) = with_peer(&rt, &g, "(memory 1)");
    g.free_pages(2, 1);
    g.set_cur(3, 1, R);
    let map = g.map();
    for (at, data) in [
        (P + 3, 2 * P + 1),
        (100 * P, 3 * P),
        (0xffff_ffff, 0xffff_ffff),
    ] {
        g.reset_outs();
        g.store(B, 0x0102_0304);
        assert_eq!(g.read_overwrite(port, at, 0, data, A), SUCCESS, "{at:#x}");
        g.assert_outs(&[(A, 0), (B, 0x0102_0304)]);
    }
    assert_eq!(g.map(), map);
    g.reset_outs();
    let before = g.snap();
    assert_eq!(g.read_overwrite(port, 0, 0, P, 3 * P), INVALID_ARGUMENT);
    assert_eq!(g.read_overwrite(port, 0, 0, P, 4 * P - 2), INVALID_ARGUMENT);
    assert_eq!(g.snap(), before);
}

// ======================================================================================
// vm_write
// ======================================================================================

/// vm_write copies the caller's bytes exactly into the peer (a read-only source and a
/// write-only destination suffice) and the target pages keep their protections.
#[test]
fn write_copies_exactly_and_keeps_the_target_protections() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    let (peer, port) = with_peer(&rt, &g, "(memory 4)");
    g.put_pattern(P, 2 * P, 7);
    g.set_max(1, 2, R);
    peer.put_pattern(0, 4 * P, 2);
    peer.set_cur(2, 1, W);
    let before = g.snap();
    assert_eq!(g.write(port, P, P, 2 * P), SUCCESS);
    assert_eq!(
        peer.map(),
        vec![(0, 2, RW, ALL), (2, 1, W, ALL), (3, 1, RW, ALL)]
    );
    peer.set_cur(2, 1, RW);
    assert_eq!(peer.bytes(0, P), pat(2, 4 * P, 0, P));
    assert_eq!(peer.bytes(P, 2 * P), gpat(7, 2 * P as usize));
    assert_eq!(peer.bytes(3 * P, P), pat(2, 4 * P, 3 * P, 4 * P));
    assert_eq!(g.snap(), before);
}

/// The caller's buffer is checked right after the port (before alignment and the target):
/// not allocated and readable, or past the end of memory / 4 GiB, is
/// MACH_SEND_INVALID_MEMORY. A bad port still wins.
#[test]
fn write_checks_the_callers_buffer_right_after_the_port() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    let (peer, port) = with_peer(&rt, &g, "(memory 4)");
    g.free_pages(2, 1);
    g.set_cur(3, 1, W);
    peer.free_pages(2, 1);
    peer.set_cur(3, 1, R);
    let (before, peer_before) = (g.snap(), peer.snap());
    assert_eq!(g.write(0, P + 1, 2 * P, P), SEND_INVALID_DEST);
    assert_eq!(g.write(0x203 + 0x100, P, 2 * P, P), SEND_INVALID_DEST);
    for (address, data, count) in [
        (P + 1, 2 * P, P),       // misaligned address, unallocated buffer
        (2 * P, 3 * P, P),       // unallocated target, write-only buffer
        (3 * P, 2 * P, P + 1),   // read-only target, misaligned count
        (P, P, 2 * P),           // buffer's second page unallocated
        (P, 3 * P, 2 * P),       // buffer past the end of memory
        (P, 0xffff_0000, 2 * P), // buffer past 4 GiB
        (P, P, P + 1),           // misaligned count reaching page 2
        (P, P + 1, P),           // misaligned buffer reaching page 2
        (P, 4 * P, P),           // buffer past the end of memory
    ] {
        assert_eq!(
            g.write(port, address, data, count),
            SEND_INVALID_MEMORY,
            "{address:#x} <- {data:#x}+{count:#x}"
        );
    }
    assert_eq!(g.snap(), before);
    assert_eq!(peer.snap(), peer_before);
}

/// With a readable buffer, a misaligned address, buffer or count is KERN_INVALID_ARGUMENT,
/// before the target range.
#[test]
fn write_misaligned_is_invalid_argument_before_the_target() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    let (peer, port) = with_peer(&rt, &g, "(memory 4)");
    peer.free_pages(2, 1);
    let peer_before = peer.snap();
    for (address, data, count) in [
        (P + 1, P, P),
        (P, P + 1, P),
        (P, P, P + 1),
        (2 * P + 1, P, P),
        (2 * P, P + 8, P),
        (2 * P, P, 8),
        (100 * P, P, 1),
    ] {
        assert_eq!(
            g.write(port, address, data, count),
            INVALID_ARGUMENT,
            "{address:#x} <- {data:#x}+{count:#x}"
        );
    }
    assert_eq!(peer.snap(), peer_before);
}

/// In the target the first offending page decides, and no byte is written, not even to
/// the good pages before it.
#[test]
fn write_target_first_offending_page_decides() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    let (peer, port) = with_peer(&rt, &g, "(memory 6)");
    g.put_pattern(P, 3 * P, 8);
    peer.set_cur(2, 1, R);
    peer.free_pages(3, 1);
    peer.set_cur(5, 1, NONE);
    let peer_before = peer.snap();
    for (address, count, want) in [
        (P, 3 * P, PROTECTION_FAILURE),
        (P, 2 * P, PROTECTION_FAILURE),
        (3 * P, 3 * P, INVALID_ADDRESS),
        (4 * P, 2 * P, PROTECTION_FAILURE),
        (5 * P, 2 * P, PROTECTION_FAILURE),
        (6 * P, P, INVALID_ADDRESS),
        (0xffff_0000, 2 * P, INVALID_ADDRESS),
        (0xffff_0000, P, INVALID_ADDRESS),
    ] {
        assert_eq!(
            g.write(port, address, P, count),
            want,
            "{address:#x}+{count:#x}"
        );
    }
    assert_eq!(peer.snap(), peer_before);
}

/// A self-write with overlapping ranges moves the bytes the source held when the call
/// began (memmove), both directions.
#[test]
fn write_to_itself_overlapping_is_memmove() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 6)");
    g.put_pattern(P, 3 * P, 12);
    assert_eq!(g.write(SELF, 2 * P, P, 3 * P), SUCCESS);
    assert_eq!(g.bytes(P, P), pat(12, 3 * P, 0, P));
    assert_eq!(g.bytes(2 * P, 3 * P), gpat(12, 3 * P as usize));

    let g = spawn(&rt, "(memory 6)");
    g.put_pattern(2 * P, 3 * P, 13);
    assert_eq!(g.write(SELF, P, 2 * P, 3 * P), SUCCESS);
    assert_eq!(g.bytes(P, 3 * P), gpat(13, 3 * P as usize));
    assert_eq!(g.bytes(4 * P, P), pat(13, 3 * P, 2 * P, 3 * P));
}

/// Count 0 succeeds right after the port check, whatever the buffer and address.
#[test]
fn write_count_zero_succeeds_with_any_buffer() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 2)");
    let (peer, port) = with_peer(&rt, &g, "(memory 2)");
    peer.set_cur(1, 1, R);
    let (before, peer_before) = (g.snap(), peer.snap());
    for (address, data) in [(P + 1, 0xffff_fff0), (P, 5 * P), (100 * P, 3), (0, 0)] {
        assert_eq!(g.write(port, address, data, 0), SUCCESS, "{address:#x}");
    }
    assert_eq!(g.snap(), before);
    assert_eq!(peer.snap(), peer_before);
}

// ======================================================================================
// vm_copy
// ======================================================================================

/// vm_copy inside a peer moves the bytes exactly (a read-only source and a write-only
/// destination suffice) and keeps protections.
#[test]
fn copy_inside_a_peer_moves_bytes_exactly() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 1)");
    let (peer, port) = with_peer(&rt, &g, "(memory 5)");
    peer.put_pattern(0, 5 * P, 14);
    peer.set_max(1, 1, R);
    peer.set_cur(3, 1, W);
    assert_eq!(g.copy(port, P, P, 3 * P), SUCCESS);
    assert_eq!(
        peer.map(),
        vec![
            (0, 1, RW, ALL),
            (1, 1, R, R),
            (2, 1, RW, ALL),
            (3, 1, W, ALL),
            (4, 1, RW, ALL)
        ]
    );
    peer.set_cur(3, 1, RW);
    assert_eq!(peer.bytes(3 * P, P), pat(14, 5 * P, P, 2 * P));
    assert_eq!(peer.bytes(0, 3 * P), pat(14, 5 * P, 0, 3 * P));
    assert_eq!(peer.bytes(4 * P, P), pat(14, 5 * P, 4 * P, 5 * P));
    assert_eq!(g.map(), vec![(0, 1, RW, ALL)]);
}

/// Overlapping source and destination give memmove's result, both directions.
#[test]
fn copy_overlapping_is_memmove() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 6)");
    g.put_pattern(P, 3 * P, 15);
    assert_eq!(g.copy(SELF, P, 3 * P, 2 * P), SUCCESS);
    assert_eq!(g.bytes(P, P), pat(15, 3 * P, 0, P));
    assert_eq!(g.bytes(2 * P, 3 * P), gpat(15, 3 * P as usize));

    let g = spawn(&rt, "(memory 6)");
    g.put_pattern(2 * P, 3 * P, 16);
    assert_eq!(g.copy(SELF, 2 * P, 3 * P, P), SUCCESS);
    assert_eq!(g.bytes(P, 3 * P), gpat(16, 3 * P as usize));
    assert_eq!(g.bytes(4 * P, P), pat(16, 3 * P, 2 * P, 3 * P));
    // A copy onto itself changes nothing.
    assert_eq!(g.copy(SELF, P, 2 * P, P), SUCCESS);
    assert_eq!(g.bytes(P, 3 * P), gpat(16, 3 * P as usize));
}

/// Any of source, count and destination not page-aligned is KERN_INVALID_ARGUMENT, before
/// the ranges.
#[test]
fn copy_misaligned_is_invalid_argument() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    g.free_pages(2, 1);
    g.set_cur(3, 1, R);
    let before = g.snap();
    for (src, count, dst) in [
        (P + 1, P, 3 * P),
        (P, P + 1, 3 * P),
        (P, P, 3 * P + 1),
        (2 * P + 8, P, P),
        (P, 8, 2 * P),
        (100 * P, P, 2 * P + 8),
    ] {
        assert_eq!(g.copy(SELF, src, count, dst), INVALID_ARGUMENT, "{src:#x}");
    }
    assert_eq!(g.snap(), before);
}

/// The whole source (needing READ) is checked before the destination (needing WRITE);
/// in each the first offending page decides; nothing is written on failure.
#[test]
fn copy_checks_the_whole_source_before_the_destination() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 1)");
    let (peer, port) = with_peer(&rt, &g, "(memory 6)");
    peer.put_pattern(0, 6 * P, 17);
    peer.free_pages(2, 1);
    peer.set_cur(3, 1, NONE);
    peer.set_cur(4, 1, R);
    let before = peer.snap();
    for (src, count, dst, want) in [
        (P, 2 * P, 4 * P, INVALID_ADDRESS), // source [ok, hole]; dest read-only
        (3 * P, P, 2 * P, PROTECTION_FAILURE), // source NONE; dest unallocated
        (3 * P, 2 * P, 0, PROTECTION_FAILURE), // source [NONE, ok], dest fine
        (P, P, 4 * P, PROTECTION_FAILURE),  // dest read-only
        (P, P, 2 * P, INVALID_ADDRESS),     // dest unallocated
        (0, 2 * P, 4 * P, PROTECTION_FAILURE), // dest [read-only, ok]
        (0, 2 * P, 5 * P, INVALID_ADDRESS), // dest [ok, past memory]
        (0, P, 4 * P, PROTECTION_FAILURE),  // dest read-only page
        (5 * P, P, 3 * P, PROTECTION_FAILURE), // dest NONE
        (0, 2 * P, 0xffff_0000, INVALID_ADDRESS), // dest past 4 GiB
        (0xffff_0000, 2 * P, 0, INVALID_ADDRESS), // source past 4 GiB
        (5 * P, 2 * P, 0, INVALID_ADDRESS), // source past memory
    ] {
        assert_eq!(
            g.copy(port, src, count, dst),
            want,
            "{src:#x}+{count:#x} -> {dst:#x}"
        );
    }
    assert_eq!(peer.snap(), before);
}

/// Count 0 succeeds whatever the addresses.
#[test]
fn copy_count_zero_succeeds() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 2)");
    let before = g.snap();
    for (src, dst) in [(P + 1, 0xffff_ffff), (100 * P, 0), (0, 0)] {
        assert_eq!(g.copy(SELF, src, 0, dst), SUCCESS, "{src:#x}");
    }
    assert_eq!(g.snap(), before);
}

// ======================================================================================
// vm_region
// ======================================================================================

/// The region containing `*address_ptr` (any byte of it) is reported: start written back,
/// size, cur and max, all little-endian at unaligned pointers.
#[test]
fn region_reports_the_containing_region() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 5)");
    g.set_cur(2, 1, R);
    g.set_max(3, 2, RW);
    for (at, want) in [
        (0, (0, 2 * P, RW, ALL)),
        (P + 12345, (0, 2 * P, RW, ALL)),
        (2 * P + 5, (2 * P, P, R, ALL)),
        (3 * P - 1, (2 * P, P, R, ALL)),
        (5 * P - 1, (3 * P, 2 * P, RW, RW)),
    ] {
        g.reset_outs();
        g.store(A, at);
        assert_eq!(g.region(SELF, A, B, C, D), SUCCESS, "{at:#x}");
        g.assert_outs(&[(A, want.0), (B, want.1), (C, want.2), (D, want.3)]);
    }
}

/// In a hole, the first region above is reported.
#[test]
fn region_in_a_hole_reports_the_next_region_above() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    g.free_pages(1, 1);
    g.store(A, 6 * P);
    assert_eq!(g.allocate(SELF, A, 2 * P, 0), SUCCESS);
    for (at, want) in [
        (P, (2 * P, 2 * P)),
        (P + 9, (2 * P, 2 * P)),
        (4 * P, (6 * P, 2 * P)),
        (6 * P - 1, (6 * P, 2 * P)),
    ] {
        g.reset_outs();
        g.store(A, at);
        assert_eq!(g.region(SELF, A, B, C, D), SUCCESS, "{at:#x}");
        g.assert_outs(&[(A, want.0), (B, want.1), (C, RW), (D, ALL)]);
    }
}

/// Nothing at or above the address is KERN_NO_SPACE, and no out-value is written.
#[test]
fn region_with_nothing_above_is_no_space_and_writes_nothing() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4 8)");
    g.free_pages(3, 1);
    for at in [3 * P, 4 * P, 8 * P, 0xffff_ffff] {
        g.reset_outs();
        g.store(A, at);
        let before = g.snap();
        assert_eq!(g.region(SELF, A, B, C, D), NO_SPACE, "{at:#x}");
        assert_eq!(g.snap(), before);
        assert_eq!(g.load(A), at);
        assert_eq!(g.load(B), u32::from(FILL) * 0x0101_0101);
    }
}

/// `address_ptr` must be 4 readable and writable bytes, checked before the lookup.
#[test]
fn region_address_pointer_is_checked_before_the_lookup() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    for at in [P + 8, 2 * P + 8, 3 * P + 8] {
        g.store(at, 100 * P); // no region there: the lookup would be KERN_NO_SPACE
    }
    g.set_cur(1, 1, W);
    g.free_pages(2, 1);
    g.set_cur(3, 1, R);
    g.reset_outs();
    let before = g.snap();
    for ptr in [P + 8, 2 * P + 8, 3 * P + 8, 4 * P - 2, 0xffff_fffe] {
        assert_eq!(g.region(SELF, ptr, B, C, D), INVALID_ARGUMENT, "{ptr:#x}");
    }
    g.assert_outs(&[]);
    assert_eq!(g.snap(), before);
}

/// The size/protection/max out-pointers are checked after the lookup; a bad one is
/// KERN_INVALID_ARGUMENT and nothing is written, not even `*address_ptr`.
#[test]
fn region_out_pointers_are_checked_after_the_lookup() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 4)");
    g.free_pages(2, 1);
    g.set_cur(3, 1, R);
    g.reset_outs();
    g.store(A, 100 * P);
    let before = g.snap();
    assert_eq!(g.region(SELF, A, 3 * P + 4, C, D), NO_SPACE);
    assert_eq!(g.region(SELF, A, B, 2 * P, D), NO_SPACE);
    assert_eq!(g.snap(), before);
    g.store(A, P + 7);
    let before = g.snap();
    for (s, p, m) in [
        (3 * P + 4, C, D),
        (B, 2 * P + 4, D),
        (B, C, 4 * P - 2),
        (B, C, 0xffff_fffd),
    ] {
        assert_eq!(
            g.region(SELF, A, s, p, m),
            INVALID_ARGUMENT,
            "{s:#x} {p:#x} {m:#x}"
        );
    }
    assert_eq!(g.snap(), before);
    assert_eq!(g.load(A), P + 7);
    assert_eq!(g.region(SELF, A, B, C, D), SUCCESS);
    g.assert_outs(&[(A, 0), (B, 2 * P), (C, RW), (D, ALL)]);
}

/// vm_region through a peer's name reports the peer's regions.
#[test]
fn region_of_a_peer() {
    let rt = runtime();
    let g = spawn(&rt, "(memory 1)");
    let (peer, port) = with_peer(&rt, &g, "(memory 3)");
    peer.set_max(1, 1, R);
    g.reset_outs();
    g.store(A, P + 1);
    assert_eq!(g.region(port, A, B, C, D), SUCCESS);
    g.assert_outs(&[(A, P), (B, P), (C, R), (D, R)]);
    g.store(A, 3 * P);
    assert_eq!(g.region(port, A, B, C, D), NO_SPACE);
    assert_eq!(g.load(A), 3 * P);
}
