//! Component tasks: the `wasmach:mach` WIT interface as a component guest sees it, through a
//! hand-written component (`components/doors.wat`) whose exports each make one call.

use wasmach::{KernReturn, Region, VM_PAGE_SIZE, VmProt};

use crate::common::{pattern, runtime};

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
    _runtime: wasmach::Runtime,
    task: wasmach::Task,
    peer: wasmach::Task,
}

fn doors() -> Doors {
    let runtime = runtime();
    let peer = runtime.spawn_bytes("(module (memory 2))").expect("peer");
    runtime.register("peer", &peer);
    let task = runtime.spawn_bytes(DOORS).expect("the component spawns");
    Doors {
        _runtime: runtime,
        task,
        peer,
    }
}

impl Doors {
    fn call(&self, name: &str, args: impl ComponentArgs) -> Result<u32, KernReturn> {
        outcome(args.call(&self.task, name))
    }
}

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
args!(u32);
args!(u32, u32, u32);
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
    let before = d.peer.vm_read(0, 2 * PAGE).unwrap();

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
    // Protection: lower the peer's maximum to READ, then writing and raising both fail.
    let read = 1;
    let read_write = 3;
    assert_eq!(d.call("protect-peer", (0, PAGE, true, read)), Ok(0));
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
    assert_eq!(d.peer.vm_read(0, 2 * PAGE).unwrap(), before);
    assert_eq!(d.peer.vm_region(0).unwrap().max_protection, VmProt::READ);
    // Look-ups: "peer" is registered, "pee" is not (KERN_INVALID_NAME).
    assert!(d.call("look-up", (4,)).is_ok());
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

#[test]
fn a_non_utf8_name_is_refused_by_the_canonical_abi() {
    // Lowering a `string` checks UTF-8 before the host sees it: the guest traps.
    let d = doors();
    d.task.vm_write(0, &[0xFF; PAGE as usize]).unwrap();
    let err = d
        .task
        .call_component::<(u32,), (i64,)>("look-up", (4,))
        .unwrap_err();
    assert!(format!("{err:#}").contains("utf-8"), "{err:#}");
}
