//! Component tasks: the `wasmach:mach` WIT interface as a component guest sees it, through a
//! hand-written component (`components/doors.wat`) whose exports each make one call.

use wasmach::{DebugSnapshot, KernReturn, Region, TaskOptions, VM_PAGE_SIZE, VmProt};

use crate::common::{pattern, raw_snapshot, runtime};

const DOORS: &str = include_str!("components/doors.wat");
const PAGE: u32 = VM_PAGE_SIZE;

/// An outcome from doors.wat: the value, or the Mach code of the `kern-error` case.
fn outcome(raw: i64) -> Result<u32, KernReturn> {
    if raw >= 0 {
        Ok(raw as u32)
    } else {
        // wit/mach.wit declares the `kern-error` cases in value order, as `KernReturn::ALL`.
        Err(KernReturn::ALL[(-raw - 1) as usize])
    }
}

struct Doors {
    runtime: wasmach::Runtime,
    task: wasmach::Task,
    peer: wasmach::Task,
}

fn doors() -> Doors {
    doors_with("(memory 2)", DOORS, &TaskOptions::default())
}

/// doors.wat (or `component`, a variant of it) spawned with `options`, next to a peer
/// module with `peer_memory`, registered as "peer".
fn doors_with(peer_memory: &str, component: &str, options: &TaskOptions) -> Doors {
    let runtime = runtime();
    let peer = runtime
        .spawn_bytes(format!("(module {peer_memory})"))
        .expect("peer");
    runtime.register("peer", &peer);
    let module = runtime.compile(component).expect("the component compiles");
    let task = runtime
        .spawn_with(&module, options)
        .expect("the component spawns");
    Doors {
        runtime,
        task,
        peer,
    }
}

/// The bytes doors.wat's exports lower their results into.
const RESULT_AREA: std::ops::Range<usize> = 16..32;

impl Doors {
    fn call(&self, name: &str, args: impl ComponentArgs) -> Result<u32, KernReturn> {
        outcome(args.call(&self.task, name))
    }

    /// The component's name for the peer (a look-up of "peer", which doors.wat holds at
    /// address 100).
    fn peer_port(&self) -> u32 {
        self.call("look-up", (4,)).expect("look up the peer")
    }

    /// The component's name for itself.
    fn self_port(&self) -> u32 {
        self.call("self-port", ()).expect("mach-task-self")
    }

    /// The u32 at `address` of the component's memory, read by the host.
    fn word(&self, address: u32) -> u32 {
        let page = address / PAGE * PAGE;
        let bytes = self.task.vm_read(page, PAGE).unwrap();
        let at = (address - page) as usize;
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    /// Both tasks, raw, except the component's result area (which every call writes).
    fn state(&self) -> (DebugSnapshot, DebugSnapshot) {
        let mut task = raw_snapshot(&self.task);
        if let Some(Some(page0)) = task.bytes.first_mut() {
            page0[RESULT_AREA].fill(0);
        }
        (task, raw_snapshot(&self.peer))
    }

    /// Writes `bytes` at `address` of the component's page 0, keeping the rest of it.
    fn put(&self, address: usize, bytes: &[u8]) {
        let mut page = self.task.vm_read(0, PAGE).unwrap();
        page[address..address + bytes.len()].copy_from_slice(bytes);
        self.task.vm_write(0, &page).unwrap();
    }
}

/// A case of a table-driven test: what it is, the export's arguments, the outcome.
type Case<A, R> = (&'static str, A, R);

/// The argument tuples doors.wat's exports take.
trait ComponentArgs {
    fn call(self, task: &wasmach::Task, name: &str) -> i64;
}

macro_rules! args {
    ($($t:ident),*) => {
        impl ComponentArgs for ($($t,)*) {
            fn call(self, task: &wasmach::Task, name: &str) -> i64 {
                task.call_component::<($($t,)*), (i64,)>(name, self)
                    .unwrap_or_else(|e| panic!("{name}: {e:#}"))
                    .0
            }
        }
    };
}
args!();
args!(u32);
args!(u32, u32);
args!(u32, u32, u32);
args!(u32, u32, u32, u32);
args!(u32, bool, u32);
args!(u32, u32, bool, u32);

#[test]
fn a_component_is_a_task_with_its_memory_in_the_address_space() {
    let d = doors();
    assert!(d.task.is_component());
    assert!(!d.peer.is_component());
    assert_eq!(d.task.memory_pages(), 1);
    assert_eq!(
        d.task.regions(),
        vec![Region {
            address: 0,
            size: u64::from(PAGE),
            protection: VmProt::DEFAULT,
            max_protection: VmProt::ALL,
        }]
    );
    // The host door reaches its memory like any task's.
    d.task.vm_write(0, &pattern(3, PAGE as usize)).unwrap();
    assert_eq!(d.task.vm_read(0, PAGE).unwrap(), pattern(3, PAGE as usize));
    // Core-module calls are refused with a message that says what to use.
    let err = d.task.call::<(), ()>("run", ()).unwrap_err();
    assert!(format!("{err:#}").contains("call_component"), "{err:#}");
}

#[test]
fn vm_allocate_past_the_end_grows_a_component() {
    let d = doors();
    // First fit above the initial page: memory grows from 1 to 3 pages.
    assert_eq!(d.call("allocate-self", (2 * PAGE,)), Ok(PAGE));
    assert_eq!(d.task.memory_pages(), 3);
    // Plain stores reach the new pages at once...
    d.task
        .call_component::<(u32, u8), ()>("store-byte", (2 * PAGE + 5, 0xAB))
        .unwrap();
    assert_eq!(d.task.vm_read(2 * PAGE, PAGE).unwrap()[5], 0xAB);
    // ...and after memory.grow(0) the bulk instructions do too (memory.size says 3).
    let size = d
        .task
        .call_component::<(u32, u32, u8), (i64,)>("fill", (PAGE, 2 * PAGE, 0x5C))
        .unwrap()
        .0;
    assert_eq!(size, 3);
    assert_eq!(
        d.task.vm_read(PAGE, 2 * PAGE).unwrap(),
        vec![0x5C; 2 * PAGE as usize]
    );
}

#[test]
fn vm_write_from_a_component_into_a_peer() {
    let d = doors();
    // A page of the component's own, filled by the host, copied into the peer's page 1.
    assert_eq!(d.call("allocate-self", (PAGE,)), Ok(PAGE));
    d.task.vm_write(PAGE, &pattern(9, PAGE as usize)).unwrap();
    assert_eq!(d.call("write-peer", (PAGE, PAGE, PAGE)), Ok(0));
    assert_eq!(
        d.peer.vm_read(PAGE, PAGE).unwrap(),
        pattern(9, PAGE as usize)
    );
}

#[test]
fn component_calls_fail_with_the_spec_codes_and_change_nothing() {
    let d = doors();
    let before = d.state();

    // Misaligned destination: KERN_INVALID_ARGUMENT.
    assert_eq!(
        d.call("write-peer", (PAGE + 1, 0, PAGE)),
        Err(KernReturn::InvalidArgument)
    );
    // Source beyond the caller's memory: MACH_SEND_INVALID_MEMORY.
    assert_eq!(
        d.call("write-peer", (0, PAGE, PAGE)),
        Err(KernReturn::SendInvalidMemory)
    );
    // Target range beyond the peer's allocation: KERN_INVALID_ADDRESS.
    assert_eq!(
        d.call("write-peer", (2 * PAGE, 0, PAGE)),
        Err(KernReturn::InvalidAddress)
    );
    // A name the component was never given, and the null name: MACH_SEND_INVALID_DEST.
    assert_eq!(
        d.call("write-port", (0x777,)),
        Err(KernReturn::SendInvalidDest)
    );
    assert_eq!(d.call("write-port", (0,)), Err(KernReturn::SendInvalidDest));
    assert_eq!(d.state(), before, "a failed call changed a task");

    // Protection: lower the peer's maximum to READ, then writing and raising both fail.
    let read = 1;
    let read_write = 3;
    assert_eq!(d.call("protect-peer", (0, PAGE, true, read)), Ok(0));
    assert_eq!(
        d.peer.vm_region(0),
        Ok(Region {
            address: 0,
            size: u64::from(PAGE),
            protection: VmProt::READ,
            max_protection: VmProt::READ,
        })
    );
    let before = d.state();
    assert_eq!(
        d.call("write-peer", (0, 0, PAGE)),
        Err(KernReturn::ProtectionFailure)
    );
    assert_eq!(
        d.call("protect-peer", (0, PAGE, false, read_write)),
        Err(KernReturn::ProtectionFailure)
    );
    assert_eq!(
        d.call("protect-peer", (4 * PAGE, PAGE, false, read)),
        Err(KernReturn::InvalidAddress)
    );
    assert_eq!(d.state(), before, "a failed call changed a task");
    // Look-ups: "peer" is registered, under the name the component holds for it; "pee" is
    // not (KERN_INVALID_NAME).
    let peer = d.task.insert_port(&d.peer).raw();
    assert_eq!(d.call("look-up", (4,)), Ok(peer));
    assert_eq!(d.call("look-up", (3,)), Err(KernReturn::InvalidName));
}

#[test]
fn a_trapping_component_leaves_the_host_and_its_peer_running() {
    let d = doors();
    assert_eq!(d.call("write-peer", (0, 0, PAGE)), Ok(0));
    // A store past the 4 GiB space traps (out of bounds)...
    let err = d
        .task
        .call_component::<(u32, u8), ()>("store-byte", (u32::MAX, 1))
        .unwrap_err();
    assert_eq!(
        err.downcast_ref::<wasmtime::Trap>(),
        Some(&wasmtime::Trap::MemoryOutOfBounds),
        "{err:#}"
    );
    // ...after which, by the component model's rule, the instance cannot be entered
    // again: an error, not a crash. Its memory, the host and the peer carry on.
    let again = d
        .task
        .call_component::<(u32, u32, u32), (i64,)>("write-peer", (0, 0, PAGE))
        .unwrap_err();
    assert!(format!("{again:#}").contains("cannot enter"), "{again:#}");
    d.task.vm_write(0, &pattern(1, PAGE as usize)).unwrap();
    d.peer.vm_write(0, &pattern(2, PAGE as usize)).unwrap();
    let port = d.task.insert_port(&d.peer);
    d.task.mach().vm_copy(port, 0, PAGE, PAGE).unwrap();
    assert_eq!(
        d.peer.vm_read(PAGE, PAGE).unwrap(),
        pattern(2, PAGE as usize)
    );
}

/// `vm-read-overwrite` copies the target's range over the caller's `data` and returns the
/// size; from the caller itself, overlapping ranges behave as `memmove`.
#[test]
fn vm_read_overwrite_from_a_component_copies_and_returns_the_size() {
    let d = doors_with("(memory 3)", DOORS, &TaskOptions::default());
    let peer = d.peer_port();
    d.peer
        .vm_write(PAGE, &pattern(4, 2 * PAGE as usize))
        .unwrap();
    assert_eq!(d.call("allocate-self", (2 * PAGE,)), Ok(PAGE));
    assert_eq!(
        d.call("read-overwrite", (peer, PAGE, 2 * PAGE, PAGE)),
        Ok(2 * PAGE)
    );
    assert_eq!(
        d.task.vm_read(PAGE, 2 * PAGE).unwrap(),
        pattern(4, 2 * PAGE as usize)
    );
    // From itself, pages 1..3 over pages 2..4 (page 3 allocated first): memmove.
    let me = d.self_port();
    assert_eq!(d.call("allocate-self", (PAGE,)), Ok(3 * PAGE));
    assert_eq!(
        d.call("read-overwrite", (me, PAGE, 2 * PAGE, 2 * PAGE)),
        Ok(2 * PAGE)
    );
    assert_eq!(
        d.task.vm_read(2 * PAGE, 2 * PAGE).unwrap(),
        pattern(4, 2 * PAGE as usize)
    );
    assert_eq!(
        d.task.vm_read(PAGE, PAGE).unwrap(),
        pattern(4, PAGE as usize)
    );
    // Size 0 succeeds whatever the addresses, and writes size 0.
    assert_eq!(d.call("read-overwrite", (peer, 7, 0, 9)), Ok(0));
}

/// `vm-read-overwrite`'s error paths, in docs/spec.md's order, each changing nothing in either task.
#[test]
fn vm_read_overwrite_from_a_component_fails_in_spec_order_and_changes_nothing() {
    let d = doors();
    let peer = d.peer_port();
    d.peer.vm_write(0, &pattern(5, 2 * PAGE as usize)).unwrap();
    assert_eq!(d.call("allocate-self", (PAGE,)), Ok(PAGE));
    // The peer's page 1 is not readable, the component's page 1 read-only.
    d.peer.vm_protect(PAGE, PAGE, false, VmProt::WRITE).unwrap();
    d.task.vm_protect(PAGE, PAGE, false, VmProt::READ).unwrap();
    d.task.vm_allocate(3 * PAGE, PAGE, false).unwrap();
    let before = d.state();
    let cases: [Case<(u32, u32, u32, u32), KernReturn>; 9] = [
        (
            "unknown name",
            (0x777, 0, PAGE, 3 * PAGE),
            KernReturn::SendInvalidDest,
        ),
        ("null name", (0, 1, 1, 1), KernReturn::SendInvalidDest),
        (
            "misaligned address",
            (peer, 1, PAGE, 3 * PAGE),
            KernReturn::InvalidArgument,
        ),
        (
            "misaligned size",
            (peer, 0, 1, 3 * PAGE),
            KernReturn::InvalidArgument,
        ),
        (
            "misaligned data",
            (peer, 0, PAGE, 3 * PAGE + 4),
            KernReturn::InvalidArgument,
        ),
        // The target's range is checked before the caller's destination.
        (
            "target unallocated",
            (peer, 2 * PAGE, PAGE, 2 * PAGE),
            KernReturn::InvalidAddress,
        ),
        (
            "target not readable",
            (peer, PAGE, PAGE, 2 * PAGE),
            KernReturn::ProtectionFailure,
        ),
        (
            "data unallocated",
            (peer, 0, PAGE, 2 * PAGE),
            KernReturn::InvalidAddress,
        ),
        (
            "data read-only",
            (peer, 0, PAGE, PAGE),
            KernReturn::ProtectionFailure,
        ),
    ];
    for (what, args, code) in cases {
        assert_eq!(d.call("read-overwrite", args), Err(code), "{what}");
        assert_eq!(d.state(), before, "{what} changed a task");
    }
    // The good call next to them lands.
    assert_eq!(
        d.call("read-overwrite", (peer, 0, PAGE, 3 * PAGE)),
        Ok(PAGE)
    );
    assert_eq!(
        d.task.vm_read(3 * PAGE, PAGE).unwrap(),
        pattern(5, PAGE as usize)
    );
}

/// `vm-copy` inside the target: exact bytes, `memmove` for overlapping ranges, count 0
/// succeeds anywhere.
#[test]
fn vm_copy_from_a_component_moves_bytes_inside_the_target() {
    let d = doors_with("(memory 4)", DOORS, &TaskOptions::default());
    let peer = d.peer_port();
    let bytes = pattern(6, 2 * PAGE as usize);
    d.peer.vm_write(0, &bytes).unwrap();
    assert_eq!(d.call("copy", (peer, 0, PAGE, 3 * PAGE)), Ok(0));
    assert_eq!(
        d.peer.vm_read(3 * PAGE, PAGE).unwrap(),
        bytes[..PAGE as usize]
    );
    // Pages 0..2 over pages 1..3: as memmove, page 1 and 2 end up with the old 0 and 1.
    assert_eq!(d.call("copy", (peer, 0, 2 * PAGE, PAGE)), Ok(0));
    assert_eq!(d.peer.vm_read(PAGE, 2 * PAGE).unwrap(), bytes);
    assert_eq!(d.peer.vm_read(0, PAGE).unwrap(), bytes[..PAGE as usize]);
    // Inside the component itself: page 1 to page 2.
    let me = d.self_port();
    assert_eq!(d.call("allocate-self", (2 * PAGE,)), Ok(PAGE));
    d.task.vm_write(PAGE, &pattern(8, PAGE as usize)).unwrap();
    assert_eq!(d.call("copy", (me, PAGE, PAGE, 2 * PAGE)), Ok(0));
    assert_eq!(
        d.task.vm_read(2 * PAGE, PAGE).unwrap(),
        pattern(8, PAGE as usize)
    );
    assert_eq!(d.call("copy", (peer, 5, 0, 0xFFFF_FFFF)), Ok(0));
}

/// `vm-copy`'s error paths, in docs/spec.md's order (the whole source before the destination),
/// each changing nothing.
#[test]
fn vm_copy_from_a_component_fails_in_spec_order_and_changes_nothing() {
    let d = doors_with("(memory 4)", DOORS, &TaskOptions::default());
    let peer = d.peer_port();
    d.peer.vm_write(0, &pattern(7, 4 * PAGE as usize)).unwrap();
    // Page 1 write-only, page 2 read-only, page 3 unallocated.
    d.peer.vm_protect(PAGE, PAGE, false, VmProt::WRITE).unwrap();
    d.peer
        .vm_protect(2 * PAGE, PAGE, false, VmProt::READ)
        .unwrap();
    d.peer.vm_deallocate(3 * PAGE, PAGE).unwrap();
    let before = d.state();
    let cases: [Case<(u32, u32, u32, u32), KernReturn>; 9] = [
        (
            "unknown name",
            (0x777, 0, PAGE, 0),
            KernReturn::SendInvalidDest,
        ),
        (
            "misaligned source",
            (peer, 1, PAGE, 0),
            KernReturn::InvalidArgument,
        ),
        (
            "misaligned count",
            (peer, 0, 1, 0),
            KernReturn::InvalidArgument,
        ),
        (
            "misaligned destination",
            (peer, 0, PAGE, 1),
            KernReturn::InvalidArgument,
        ),
        (
            "source unallocated",
            (peer, 3 * PAGE, PAGE, 2 * PAGE),
            KernReturn::InvalidAddress,
        ),
        (
            "source not readable",
            (peer, PAGE, PAGE, 0),
            KernReturn::ProtectionFailure,
        ),
        // The source's failing page decides even when its first page is good.
        (
            "source runs into a hole",
            (peer, 2 * PAGE, 2 * PAGE, 0),
            KernReturn::InvalidAddress,
        ),
        (
            "destination unallocated",
            (peer, 0, PAGE, 3 * PAGE),
            KernReturn::InvalidAddress,
        ),
        (
            "destination read-only",
            (peer, 0, PAGE, 2 * PAGE),
            KernReturn::ProtectionFailure,
        ),
    ];
    for (what, args, code) in cases {
        assert_eq!(d.call("copy", args), Err(code), "{what}");
        assert_eq!(d.state(), before, "{what} changed a task");
    }
}

/// `vm-region`'s record: the region containing the address or the first above it, with
/// its size and both protections as `vm-prot` flags; none at or above is `no-space`.
#[test]
fn vm_region_from_a_component_reports_each_region_s_values() {
    let d = doors_with("(memory 6)", DOORS, &TaskOptions::default());
    let peer = d.peer_port();
    // Pages 0..2 DEFAULT/ALL, 2 READ/READ, 3 free, 4 READ|EXECUTE/ALL, 5 NONE/ALL.
    d.peer
        .vm_protect(2 * PAGE, PAGE, true, VmProt::READ)
        .unwrap();
    d.peer.vm_deallocate(3 * PAGE, PAGE).unwrap();
    d.peer
        .vm_protect(4 * PAGE, PAGE, false, VmProt::READ | VmProt::EXECUTE)
        .unwrap();
    d.peer
        .vm_protect(5 * PAGE, PAGE, false, VmProt::NONE)
        .unwrap();
    // (address asked, region address, size, protection, max) with protections as the
    // flags' bits (read 1, write 2, execute 4).
    let cases = [
        (0, 0, 2 * PAGE, 3, 7),
        (2 * PAGE - 1, 0, 2 * PAGE, 3, 7),
        (2 * PAGE + 9, 2 * PAGE, PAGE, 1, 1),
        (3 * PAGE, 4 * PAGE, PAGE, 5, 7), // in the hole: the first region above
        (5 * PAGE, 5 * PAGE, PAGE, 0, 7),
    ];
    for (asked, address, size, prot, max) in cases {
        assert_eq!(d.call("region", (peer, asked)), Ok(0), "at {asked:#x}");
        let record = d.task.vm_read(0, PAGE).unwrap();
        assert_eq!(
            (
                d.word(20),
                d.word(24),
                u32::from(record[28]),
                u32::from(record[29])
            ),
            (address, size, prot, max),
            "at {asked:#x}"
        );
        // The host door agrees.
        let host = d.peer.vm_region(asked).unwrap();
        assert_eq!(
            (
                host.address,
                host.size,
                host.protection.bits(),
                host.max_protection.bits()
            ),
            (address, u64::from(size), prot, max)
        );
    }
    let before = d.state();
    assert_eq!(d.call("region", (peer, 6 * PAGE)), Err(KernReturn::NoSpace));
    assert_eq!(d.call("region", (peer, u32::MAX)), Err(KernReturn::NoSpace));
    assert_eq!(
        d.call("region", (0x777, 0)),
        Err(KernReturn::SendInvalidDest)
    );
    assert_eq!(d.state(), before);
}

/// A region of the whole 4 GiB is reported one page short, as to core guests: its size
/// does not fit a `vm-size`.
#[test]
fn vm_region_from_a_component_reports_a_4_gib_region_one_page_short() {
    let d = doors_with("(memory 65536)", DOORS, &TaskOptions::default());
    let peer = d.peer_port();
    assert_eq!(d.call("region", (peer, 0)), Ok(0));
    assert_eq!((d.word(20), d.word(24)), (0, u32::MAX - (PAGE - 1)));
    assert_eq!(d.peer.vm_region(0).unwrap().size, 1 << 32);
}

/// `vm-read` returns the target's bytes as a list in the component's memory; its errors
/// are docs/spec.md's, changing nothing.
#[test]
fn vm_read_from_a_component_returns_the_bytes_as_a_list() {
    let d = doors_with("(memory 3)", DOORS, &TaskOptions::default());
    let peer = d.peer_port();
    let bytes = pattern(10, 2 * PAGE as usize);
    d.peer.vm_write(PAGE, &bytes).unwrap();
    // The bump allocator puts the list at the end of the memory: pages 1 and 2.
    assert_eq!(d.call("read", (peer, PAGE, 2 * PAGE)), Ok(PAGE));
    assert_eq!(d.word(24), 2 * PAGE, "the list's length");
    assert_eq!(d.task.vm_read(PAGE, 2 * PAGE).unwrap(), bytes);
    assert_eq!(d.task.memory_pages(), 3);
    // Size 0: an empty list, whatever the address.
    assert_eq!(d.call("read", (peer, 3, 0)), Ok(3 * PAGE));
    assert_eq!(d.word(24), 0);

    d.peer
        .vm_protect(2 * PAGE, PAGE, false, VmProt::WRITE)
        .unwrap();
    let before = d.state();
    let cases: [Case<(u32, u32, u32), KernReturn>; 5] = [
        (
            "unknown name",
            (0x777, 0, PAGE),
            KernReturn::SendInvalidDest,
        ),
        (
            "misaligned address",
            (peer, 1, PAGE),
            KernReturn::InvalidArgument,
        ),
        (
            "misaligned size",
            (peer, 0, PAGE + 1),
            KernReturn::InvalidArgument,
        ),
        (
            "unallocated",
            (peer, 3 * PAGE, PAGE),
            KernReturn::InvalidAddress,
        ),
        (
            "not readable",
            (peer, PAGE, 2 * PAGE),
            KernReturn::ProtectionFailure,
        ),
    ];
    for (what, args, code) in cases {
        assert_eq!(d.call("read", args), Err(code), "{what}");
        assert_eq!(d.state(), before, "{what} changed a task");
    }
}

/// A component's `vm-read` is bounded by what its memory quota leaves: the list must fit
/// in pages it may still allocate, else KERN_NO_SPACE before anything is copied (and not a
/// trap in the guest's allocator); the other checks come first.
#[test]
fn vm_read_from_a_component_is_bounded_by_its_quota() {
    let quota = TaskOptions::default().max_memory(3 * u64::from(PAGE));
    let d = doors_with("(memory 1024)", DOORS, &quota);
    let peer = d.peer_port();
    d.peer.vm_write(0, &pattern(11, 2 * PAGE as usize)).unwrap();
    // 1 page allocated of 3: a 64 MiB read does not fit, nor does 3 pages...
    assert_eq!(
        d.call("read", (peer, 0, 1024 * PAGE)),
        Err(KernReturn::NoSpace)
    );
    assert_eq!(
        d.call("read", (peer, 0, 3 * PAGE)),
        Err(KernReturn::NoSpace)
    );
    // ...2 pages do, exactly what is left.
    assert_eq!(d.call("read", (peer, 0, 2 * PAGE)), Ok(PAGE));
    assert_eq!(
        d.task.vm_read(PAGE, 2 * PAGE).unwrap(),
        pattern(11, 2 * PAGE as usize)
    );
    assert_eq!(d.task.memory_pages(), 3);
    // Now nothing is left: one page is KERN_NO_SPACE, size 0 still succeeds, and the
    // earlier checks still decide first.
    let before = d.state();
    assert_eq!(d.call("read", (peer, 0, PAGE)), Err(KernReturn::NoSpace));
    assert_eq!(d.call("read", (peer, 0, 0)), Ok(3 * PAGE));
    assert_eq!(
        d.call("read", (0x777, 0, PAGE)),
        Err(KernReturn::SendInvalidDest)
    );
    assert_eq!(
        d.call("read", (peer, 1, PAGE)),
        Err(KernReturn::InvalidArgument)
    );
    assert_eq!(
        d.call("read", (peer, 0, 1025 * PAGE)),
        Err(KernReturn::InvalidAddress)
    );
    d.peer.vm_protect(0, PAGE, false, VmProt::NONE).unwrap();
    assert_eq!(
        d.call("read", (peer, 0, PAGE)),
        Err(KernReturn::ProtectionFailure)
    );
    d.peer.vm_protect(0, PAGE, false, VmProt::DEFAULT).unwrap();
    assert_eq!(d.state(), before);
    // Freeing a page makes room for one.
    d.task.vm_deallocate(2 * PAGE, PAGE).unwrap();
    assert_eq!(d.call("read", (peer, PAGE, PAGE)), Ok(3 * PAGE));
}

/// Without a quota, a component's `vm-read` is bounded by its address space: the list must
/// fit in the pages its memory's maximum leaves.
#[test]
fn vm_read_from_a_component_without_a_quota_is_bounded_by_its_address_space() {
    let four_pages = DOORS.replace(
        r#"(memory (export "memory") 1)"#,
        r#"(memory (export "memory") 1 4)"#,
    );
    assert_ne!(
        four_pages, DOORS,
        "doors.wat declares its memory as expected"
    );
    let d = doors_with("(memory 8)", &four_pages, &TaskOptions::default());
    let peer = d.peer_port();
    d.peer.vm_write(0, &pattern(12, 3 * PAGE as usize)).unwrap();
    // 1 page of 4 in use: 4 pages do not fit, 3 do.
    assert_eq!(
        d.call("read", (peer, 0, 4 * PAGE)),
        Err(KernReturn::NoSpace)
    );
    assert_eq!(d.call("read", (peer, 0, 3 * PAGE)), Ok(PAGE));
    assert_eq!(
        d.task.vm_read(PAGE, 3 * PAGE).unwrap(),
        pattern(12, 3 * PAGE as usize)
    );
    assert_eq!(d.call("read", (peer, 0, PAGE)), Err(KernReturn::NoSpace));
    assert_eq!(
        d.call("read", (peer, 1, PAGE)),
        Err(KernReturn::InvalidArgument)
    );
}

/// `bootstrap-look-up` takes the name as bytes, so the runtime answers docs/spec.md's cases itself:
/// a name of more than 128 bytes or not UTF-8 is KERN_INVALID_ARGUMENT, unknown
/// KERN_INVALID_NAME; 128 bytes is a valid length.
#[test]
fn bootstrap_look_up_from_a_component_refuses_long_and_non_utf8_names() {
    let d = doors();
    let long_name = "n".repeat(128);
    let long = d.runtime.spawn_bytes("(module (memory 1))").unwrap();
    d.runtime.register(&long_name, &long);
    let long_port = d.task.insert_port(&long).raw();
    let peer_port = d.task.insert_port(&d.peer).raw();
    let at = 1024;
    d.put(at, long_name.as_bytes());
    d.put(at + 128, b"x");
    d.put(2048, &[0xFF, 0xFE]);
    d.put(3072, "p\u{e9}er".as_bytes());
    let before = d.state();
    let cases: [Case<(u32, u32), Result<u32, KernReturn>>; 8] = [
        ("\"peer\"", (100, 4), Ok(peer_port)),
        ("128 bytes, registered", (at as u32, 128), Ok(long_port)),
        (
            "129 bytes",
            (at as u32, 129),
            Err(KernReturn::InvalidArgument),
        ),
        // The whole memory: refused from its length, nothing is copied.
        ("65536 bytes", (0, PAGE), Err(KernReturn::InvalidArgument)),
        ("not UTF-8", (2048, 2), Err(KernReturn::InvalidArgument)),
        ("UTF-8, unknown", (3072, 5), Err(KernReturn::InvalidName)),
        (
            "127 bytes, unknown",
            (at as u32, 127),
            Err(KernReturn::InvalidName),
        ),
        ("empty", (0, 0), Err(KernReturn::InvalidName)),
    ];
    for (what, args, want) in cases {
        assert_eq!(d.call("look-up-at", args), want, "{what}");
    }
    assert_eq!(d.state(), before, "a look-up changed a task's memory");
}

/// A name list that does not lie inside the component's memory traps, as any list the
/// canonical ABI cannot lift; the host and the peer carry on.
#[test]
fn bootstrap_look_up_of_a_list_outside_the_memory_traps_in_the_canonical_abi() {
    let d = doors();
    let err = d
        .task
        .call_component::<(u32, u32), (i64,)>("look-up-at", (PAGE - 2, 4))
        .unwrap_err();
    assert!(format!("{err:#}").contains("out of bounds"), "{err:#}");
    d.peer.vm_write(0, &pattern(1, PAGE as usize)).unwrap();
    assert_eq!(d.peer.vm_read(0, PAGE).unwrap(), pattern(1, PAGE as usize));
}
