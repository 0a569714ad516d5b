//! Port namespaces and the task lifecycle (docs/spec.md §1 "Port name", §2, §4 mach_task_self,
//! bootstrap_look_up, "Task lifecycle"): names are capabilities, per namespace; a
//! terminated task's names are dead everywhere.

use wasmach::{KernReturn, PortName, Region, Runtime, Task, VmProt};

use crate::common::*;

const P: u32 = PAGE;

use KernReturn::{InvalidName, SendInvalidDest};

fn spawn(rt: &Runtime, memory: &str) -> Task {
    rt.spawn_bytes(format!("(module {memory})")).expect("spawn")
}

/// A guest that exposes bootstrap_look_up, mach_task_self, vm_write and
/// vm_read_overwrite. Page 0 holds the names "server" at 256, "nobody" at 272, the
/// non-UTF-8 bytes ff fe at 288, and the sentinel 0xdeadbeef at 24.
fn client(rt: &Runtime) -> Task {
    rt.spawn_bytes(guest(
        "(memory 2)",
        r#"
        (data (i32.const 24) "\ef\be\ad\de")
        (data (i32.const 256) "server")
        (data (i32.const 272) "nobody")
        (data (i32.const 288) "\ff\fe")
        (func (export "look_up") (param i32 i32 i32) (result i32)
          (call $bootstrap_look_up (local.get 0) (local.get 1) (local.get 2)))
        (func (export "task_self") (result i32) (call $mach_task_self))
        (func (export "write") (param i32 i32 i32 i32) (result i32)
          (call $vm_write (local.get 0) (local.get 1) (local.get 2) (local.get 3)))
        (func (export "read_overwrite") (param i32 i32 i32 i32 i32) (result i32)
          (call $vm_read_overwrite
            (local.get 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4)))
        "#,
    ))
    .expect("spawn client")
}

/// The little-endian u32 at `address` of `task` (through the host's vm_read).
fn read_u32(task: &Task, address: u32) -> u32 {
    let page = address / P * P;
    let bytes = task.vm_read(page, P).expect("read page");
    let at = (address - page) as usize;
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn fill(task: &Task, page: u32, seed: u8) -> Vec<u8> {
    let data = pattern(seed, P as usize);
    task.vm_write(page * P, &data).expect("fill");
    data
}

/// Every call through `a.mach()` on `port`, with arguments that succeed on a live target
/// of two pages (A's page 0 is the data buffer, A's page 1 the read_overwrite destination),
/// and then with arguments that are odd or wrong (size 0, misaligned, bad bits, a bad
/// buffer): a dead or unknown port must be reported before any of that.
fn every_call(a: &Task, port: PortName) -> Vec<(&'static str, Result<(), KernReturn>)> {
    let m = a.mach();
    vec![
        (
            "vm_allocate anywhere",
            m.vm_allocate(port, 0, P, true).map(drop),
        ),
        (
            "vm_allocate fixed",
            m.vm_allocate(port, 8 * P, P, false).map(drop),
        ),
        ("vm_deallocate", m.vm_deallocate(port, P, P)),
        ("vm_protect", m.vm_protect(port, 0, P, false, 1)),
        ("vm_protect set_max", m.vm_protect(port, 0, P, true, 7)),
        ("vm_region", m.vm_region(port, 0).map(drop)),
        ("vm_read", m.vm_read(port, 0, P).map(drop)),
        (
            "vm_read_overwrite",
            m.vm_read_overwrite(port, 0, P, P).map(drop),
        ),
        ("vm_write", m.vm_write(port, 0, 0, P)),
        ("vm_copy", m.vm_copy(port, 0, P, P)),
        // odd or wrong arguments
        (
            "vm_allocate size 0",
            m.vm_allocate(port, 0, 0, true).map(drop),
        ),
        (
            "vm_allocate past 4 GiB",
            m.vm_allocate(port, u32::MAX, 2 * P, false).map(drop),
        ),
        ("vm_deallocate size 0", m.vm_deallocate(port, 1, 0)),
        ("vm_deallocate wrap", m.vm_deallocate(port, u32::MAX, 2)),
        ("vm_protect bad bits", m.vm_protect(port, 0, P, false, 8)),
        ("vm_protect size 0", m.vm_protect(port, 0, 0, false, 1)),
        (
            "vm_region nothing above",
            m.vm_region(port, u32::MAX).map(drop),
        ),
        ("vm_read misaligned", m.vm_read(port, 1, P).map(drop)),
        ("vm_read size 0", m.vm_read(port, 0, 0).map(drop)),
        (
            "vm_read_overwrite size 0",
            m.vm_read_overwrite(port, 0, 0, 0).map(drop),
        ),
        (
            "vm_read_overwrite misaligned",
            m.vm_read_overwrite(port, 0, P, 1).map(drop),
        ),
        ("vm_write bad buffer", m.vm_write(port, 0, 9 * P, P)),
        ("vm_write count 0", m.vm_write(port, 0, 0, 0)),
        ("vm_copy misaligned", m.vm_copy(port, 1, P, 0)),
        ("vm_copy count 0", m.vm_copy(port, 0, 0, P)),
    ]
}

/// Asserts that every call through `port` from `a` is MACH_SEND_INVALID_DEST.
fn assert_dead(a: &Task, port: PortName) {
    for (call, result) in every_call(a, port) {
        assert_eq!(result, Err(SendInvalidDest), "{call} through {port:?}");
    }
}

/// MACH_PORT_NULL and names never handed out are MACH_SEND_INVALID_DEST for every call,
/// whatever the other arguments, and change nothing in any task.
#[test]
fn null_and_unknown_names_are_send_invalid_dest_for_every_call() {
    let rt = runtime();
    let a = spawn(&rt, "(memory 2)");
    let b = spawn(&rt, "(memory 2)");
    let pb = a.insert_port(&b);
    fill(&a, 0, 1);
    fill(&a, 1, 2);
    fill(&b, 0, 3);
    let (before_a, before_b) = (raw_snapshot(&a), raw_snapshot(&b));
    let names = [
        PortName::NULL,
        PortName(1),
        PortName(3),
        PortName(0x100),
        PortName(0x104),
        PortName(0x102),
        PortName(pb.raw() + 1),
        PortName(pb.raw() + 0x100),
        PortName(pb.raw() + 0x1000),
        PortName(0xffff_ff03),
        PortName(u32::MAX),
    ];
    for name in names {
        assert!(name != pb && name != a.self_port());
        assert_dead(&a, name);
    }
    assert_eq!(raw_snapshot(&a), before_a);
    assert_eq!(raw_snapshot(&b), before_b);
    assert_eq!(PortName::NULL.raw(), 0);
}

/// insert_port gives the same name for the same task each time and different names for
/// different tasks; no granted name is MACH_PORT_NULL or the self name; each name acts on
/// its own task.
#[test]
fn insert_port_gives_one_name_per_task() {
    let rt = runtime();
    let a = spawn(&rt, "(memory 1)");
    let b = spawn(&rt, "(memory 2)");
    let c = spawn(&rt, "(memory 3)");
    let nb = a.insert_port(&b);
    let nc = a.insert_port(&c);
    assert_eq!(a.insert_port(&b), nb);
    assert_eq!(a.insert_port(&c), nc);
    assert_ne!(nb, nc);
    for n in [nb, nc] {
        assert_ne!(n, PortName::NULL);
        assert_ne!(n, a.self_port());
    }
    assert_eq!(
        a.insert_port(&a),
        a.self_port(),
        "a task's own name is its self name"
    );
    let whole = |pages: u32| Region {
        address: 0,
        size: u64::from(pages * P),
        protection: wasmach::VmProt::DEFAULT,
        max_protection: wasmach::VmProt::ALL,
    };
    assert_eq!(a.mach().vm_region(nb, 0), Ok(whole(2)));
    assert_eq!(a.mach().vm_region(nc, 0), Ok(whole(3)));
    assert_eq!(a.mach().vm_region(a.self_port(), 0), Ok(whole(1)));
}

/// A name granted to A means nothing in B's or C's namespace (MACH_SEND_INVALID_DEST, no
/// change anywhere); a name with the same value in C's namespace names C's own peer.
#[test]
fn a_name_is_valid_only_in_its_own_namespace() {
    let rt = runtime();
    let a = spawn(&rt, "(memory 2)");
    let b = spawn(&rt, "(memory 2)");
    let c = spawn(&rt, "(memory 2)");
    let nb = a.insert_port(&b);
    assert_ne!(nb, b.self_port());
    for t in [&a, &b, &c] {
        fill(t, 0, 1);
    }
    let before: Vec<wasmach::DebugSnapshot> = [&a, &b, &c].map(raw_snapshot).into();
    assert_dead(&b, nb);
    assert_dead(&c, nb);
    assert_eq!(before, [&a, &b, &c].map(raw_snapshot));

    // C's own names act on C's peers, whatever their values
    let nca = c.insert_port(&a);
    assert_eq!(c.mach().vm_allocate(nca, 0, P, true), Ok(2 * P));
    assert_eq!(a.memory_pages(), 3, "C's name acted on A");
    assert_eq!(raw_snapshot(&b), before[1], "never on B");
    assert_eq!(a.mach().vm_allocate(nb, 0, P, true), Ok(2 * P));
    assert_eq!(b.memory_pages(), 3, "A's name still acts on B");
}

/// The self name is 0x103 from every door (self_port, mach().task_self(), a guest's
/// mach_task_self) and targets the caller itself for every call.
#[test]
fn the_self_name_is_0x103_and_targets_the_caller() {
    let rt = runtime();
    let a = spawn(&rt, "(memory 2)");
    let b = spawn(&rt, "(memory 1)");
    assert_eq!(a.self_port(), PortName(0x103));
    assert_eq!(a.mach().task_self(), PortName(0x103));
    assert_eq!(b.self_port(), PortName(0x103));
    let g = client(&rt);
    assert_eq!(g.call::<(), i32>("task_self", ()).unwrap(), 0x103);

    let s = a.mach().task_self();
    let m = a.mach();
    let p0 = fill(&a, 0, 1);
    assert_eq!(m.vm_allocate(s, 0, P, true), Ok(2 * P));
    assert_eq!(m.vm_copy(s, 0, P, 2 * P), Ok(()));
    assert_eq!(m.vm_write(s, P, 0, P), Ok(()));
    assert_eq!(a.vm_read(0, 3 * P), Ok([&p0[..], &p0, &p0].concat()));
    assert_eq!(m.vm_read(s, 0, P), Ok((3 * P, P)));
    assert_eq!(a.vm_read(3 * P, P), Ok(p0.clone()));
    assert_eq!(m.vm_read_overwrite(s, 3 * P, P, P), Ok(P));
    assert_eq!(m.vm_protect(s, P, P, true, 1), Ok(()));
    let r = m.vm_region(s, P).unwrap();
    assert_eq!(
        (
            r.address,
            r.size,
            r.protection.bits(),
            r.max_protection.bits()
        ),
        (P, u64::from(P), 1, 1)
    );
    assert_eq!(m.vm_deallocate(s, 2 * P, 2 * P), Ok(()));
    assert_eq!(a.regions().len(), 2);
    // 0x103 in B's namespace is B
    assert_eq!(b.mach().vm_allocate(b.self_port(), 0, P, true), Ok(P));
    assert_eq!(b.memory_pages(), 2);
    assert_eq!(a.memory_pages(), 4);
}

/// bootstrap_look_up through mach(): a registered name gives a name for the task, the
/// same one each time and the one insert_port gives; unknown names are
/// KERN_INVALID_NAME (15).
#[test]
fn bootstrap_look_up_from_the_host_door() {
    let rt = runtime();
    let a = spawn(&rt, "(memory 1)");
    let b = spawn(&rt, "(memory 1)");
    let c = spawn(&rt, "(memory 1)");
    rt.register("server", &b);
    rt.register("alias", &b);
    rt.register("other", &c);
    let nb = a.mach().bootstrap_look_up("server").unwrap();
    assert_ne!(nb, PortName::NULL);
    assert_ne!(nb, a.self_port());
    assert_eq!(a.mach().bootstrap_look_up("server"), Ok(nb));
    assert_eq!(a.mach().bootstrap_look_up("alias"), Ok(nb));
    assert_eq!(a.insert_port(&b), nb);
    let nc = a.mach().bootstrap_look_up("other").unwrap();
    assert_ne!(nc, nb);
    assert_eq!(a.insert_port(&c), nc);

    let data = fill(&a, 0, 5);
    assert_eq!(a.mach().vm_write(nb, 0, 0, P), Ok(()));
    assert_eq!(b.vm_read(0, P), Ok(data));
    assert_eq!(c.vm_read(0, P), Ok(vec![0; P as usize]));

    for unknown in ["nobody", "", "Server", "server ", "serve"] {
        let e = a.mach().bootstrap_look_up(unknown).unwrap_err();
        assert_eq!(e, InvalidName, "{unknown:?}");
        assert_eq!(e.code(), 15);
    }
    // a task looking itself up gets its self name
    rt.register("me", &a);
    assert_eq!(a.mach().bootstrap_look_up("me"), Ok(a.self_port()));
}

/// bootstrap_look_up from a guest writes the name to *port_ptr (the same each time, the
/// same the host door sees); the guest can use it; unknown names give 15 and leave
/// *port_ptr alone; a bad name pointer or non-UTF-8 name gives KERN_INVALID_ARGUMENT; the
/// lookup comes before the port_ptr check.
#[test]
fn bootstrap_look_up_from_a_guest() {
    let rt = runtime();
    let g = client(&rt);
    let server = spawn(&rt, "(memory 1)");
    rt.register("server", &server);
    assert_eq!(
        g.call::<(i32, i32, i32), i32>("look_up", (256, 6, 16))
            .unwrap(),
        0
    );
    let port = read_u32(&g, 16);
    assert_ne!(port, 0);
    assert_ne!(port, 0x103);
    assert_eq!(
        g.call::<(i32, i32, i32), i32>("look_up", (256, 6, 20))
            .unwrap(),
        0
    );
    assert_eq!(read_u32(&g, 20), port);
    assert_eq!(g.insert_port(&server), PortName(port));
    assert_eq!(g.mach().bootstrap_look_up("server"), Ok(PortName(port)));

    let data = fill(&g, 1, 9);
    assert_eq!(
        g.call::<(i32, i32, i32, i32), i32>("write", (port as i32, 0, P as i32, P as i32))
            .unwrap(),
        0
    );
    assert_eq!(server.vm_read(0, P), Ok(data));

    let before = raw_snapshot(&g);
    let code = |ptr: u32, len: u32, out: u32| {
        g.call::<(i32, i32, i32), i32>("look_up", (ptr as i32, len as i32, out as i32))
            .unwrap()
    };
    assert_eq!(code(272, 6, 24), 15, "unknown name");
    assert_eq!(code(2 * P, 4, 24), 4, "name outside the memory");
    assert_eq!(code(P * 2 - 2, 6, 24), 4, "name running off the memory");
    assert_eq!(code(288, 2, 24), 4, "non-UTF-8 name");
    assert_eq!(code(272, 6, 2 * P), 15, "lookup before the port pointer");
    assert_eq!(code(256, 6, 2 * P), 4, "known name, bad port pointer");
    assert_eq!(read_u32(&g, 24), 0xdead_beef);
    assert_eq!(raw_snapshot(&g), before);
}

/// Shared body of the termination tests: `end` terminates B (by drop or terminate).
fn termination_kills_every_name(end: impl FnOnce(Task)) {
    let rt = runtime();
    let a = spawn(&rt, "(memory 2)");
    let b = spawn(&rt, "(memory 2)");
    let c = spawn(&rt, "(memory 1)");
    let d = spawn(&rt, "(memory 1)");
    rt.register("b", &b);
    rt.register("d", &d);
    let nb = a.mach().bootstrap_look_up("b").unwrap();
    let cb = c.insert_port(&b);
    let nd = a.insert_port(&d);
    fill(&a, 0, 1);
    fill(&a, 1, 2);
    fill(&b, 0, 3);
    assert_eq!(
        a.mach().vm_region(nb, 0),
        Ok(Region {
            address: 0,
            size: 2 * u64::from(P),
            protection: VmProt::DEFAULT,
            max_protection: VmProt::ALL,
        })
    );
    let (before_a, before_c, before_d) = (raw_snapshot(&a), raw_snapshot(&c), raw_snapshot(&d));

    end(b);

    assert_dead(&a, nb);
    assert_dead(&c, cb);
    assert_eq!(a.mach().bootstrap_look_up("b"), Err(InvalidName));
    assert_eq!(c.mach().bootstrap_look_up("b"), Err(InvalidName));
    assert_eq!(
        raw_snapshot(&a),
        before_a,
        "the caller's state is unchanged"
    );
    assert_eq!(raw_snapshot(&c), before_c);
    assert_eq!(raw_snapshot(&d), before_d);
    // other registrations and names live on
    assert_eq!(a.mach().bootstrap_look_up("d"), Ok(nd));
    assert_eq!(a.mach().vm_write(nd, 0, 0, P), Ok(()));
    assert_eq!(d.vm_read(0, P), a.vm_read(0, P));
}

/// Dropping a task's handle terminates it: every name for it in every namespace gives
/// MACH_SEND_INVALID_DEST, its bootstrap name is KERN_INVALID_NAME.
#[test]
fn dropping_a_task_kills_every_name_for_it() {
    termination_kills_every_name(drop);
}

/// Task::terminate does the same as dropping.
#[test]
fn terminating_a_task_kills_every_name_for_it() {
    termination_kills_every_name(Task::terminate);
}

/// A guest holding a name for a terminated task gets MACH_SEND_INVALID_DEST from its
/// calls and KERN_INVALID_NAME from a new lookup; its port_ptr is left alone.
#[test]
fn a_guest_sees_a_terminated_peer_as_dead() {
    let rt = runtime();
    let g = client(&rt);
    let server = spawn(&rt, "(memory 1)");
    rt.register("server", &server);
    assert_eq!(
        g.call::<(i32, i32, i32), i32>("look_up", (256, 6, 16))
            .unwrap(),
        0
    );
    let port = read_u32(&g, 16) as i32;
    fill(&g, 1, 4);
    server.terminate();
    let before = raw_snapshot(&g);
    let dest = KernReturn::SendInvalidDest.code() as i32;
    assert_eq!(
        g.call::<(i32, i32, i32, i32), i32>("write", (port, 0, P as i32, P as i32))
            .unwrap(),
        dest
    );
    assert_eq!(
        g.call::<(i32, i32, i32, i32, i32), i32>(
            "read_overwrite",
            (port, 0, P as i32, P as i32, 32)
        )
        .unwrap(),
        dest
    );
    assert_eq!(
        g.call::<(i32, i32, i32), i32>("look_up", (256, 6, 24))
            .unwrap(),
        15
    );
    assert_eq!(read_u32(&g, 24), 0xdead_beef);
    assert_eq!(raw_snapshot(&g), before);
}

/// Terminating one task leaves every other task's memory and map as they were, and names
/// between the survivors keep working.
#[test]
fn terminating_a_task_does_not_affect_other_tasks() {
    let rt = runtime();
    let a = spawn(&rt, "(memory 3)");
    let b = spawn(&rt, "(memory 3)");
    let c = spawn(&rt, "(memory 2)");
    for (i, t) in [&a, &b, &c].into_iter().enumerate() {
        for page in 0..t.memory_pages() {
            fill(t, page, (i * 10) as u8 + page as u8);
        }
    }
    a.vm_protect(P, P, false, wasmach::VmProt::READ).unwrap();
    c.vm_allocate(5 * P, P, false).unwrap();
    let na = c.insert_port(&a);
    let nc = a.insert_port(&c);
    let _ = (a.insert_port(&b), b.insert_port(&a), b.insert_port(&c));
    let (before_a, before_c) = (raw_snapshot(&a), raw_snapshot(&c));
    b.terminate();
    assert_eq!(raw_snapshot(&a), before_a);
    assert_eq!(raw_snapshot(&c), before_c);
    assert_eq!(a.mach().vm_read(nc, 0, P), Ok((3 * P, P)));
    assert_eq!(a.vm_read(3 * P, P), c.vm_read(0, P));
    assert_eq!(c.mach().vm_write(na, 2 * P, 0, P), Ok(()));
    assert_eq!(a.vm_read(2 * P, P), c.vm_read(0, P));
}

/// Dropping the caller leaves the tasks it named alive for everybody else.
#[test]
fn dropping_the_caller_leaves_its_targets_alive() {
    let rt = runtime();
    let a = spawn(&rt, "(memory 1)");
    let b = spawn(&rt, "(memory 1)");
    let c = spawn(&rt, "(memory 1)");
    rt.register("b", &b);
    let _ = a.mach().bootstrap_look_up("b").unwrap();
    let data = fill(&b, 0, 7);
    drop(a);
    let nb = c.mach().bootstrap_look_up("b").unwrap();
    assert_eq!(c.mach().vm_read(nb, 0, P), Ok((P, P)));
    assert_eq!(c.vm_read(P, P), Ok(data));
}

/// `unregister` removes the bootstrap name (KERN_INVALID_NAME for everybody, guests too),
/// but names already granted keep working.
#[test]
fn unregister_removes_the_name_but_granted_names_keep_working() {
    let rt = runtime();
    let a = spawn(&rt, "(memory 1)");
    let g = client(&rt);
    let server = spawn(&rt, "(memory 1)");
    rt.register("server", &server);
    let ns = a.mach().bootstrap_look_up("server").unwrap();
    rt.unregister("server");
    rt.unregister("never registered");
    assert_eq!(a.mach().bootstrap_look_up("server"), Err(InvalidName));
    assert_eq!(g.mach().bootstrap_look_up("server"), Err(InvalidName));
    assert_eq!(
        g.call::<(i32, i32, i32), i32>("look_up", (256, 6, 24))
            .unwrap(),
        15
    );
    let data = fill(&a, 0, 3);
    assert_eq!(a.mach().vm_write(ns, 0, 0, P), Ok(()));
    assert_eq!(server.vm_read(0, P), Ok(data));
    // registering again makes it findable again, under the same name in A
    rt.register("server", &server);
    assert_eq!(a.mach().bootstrap_look_up("server"), Ok(ns));
}

/// Registering a name again hands it to the new task (Runtime::register's contract).
#[test]
fn register_replaces_the_previous_holder() {
    let rt = runtime();
    let a = spawn(&rt, "(memory 1)");
    let b = spawn(&rt, "(memory 1)");
    let c = spawn(&rt, "(memory 1)");
    rt.register("svc", &b);
    let nb = a.mach().bootstrap_look_up("svc").unwrap();
    rt.register("svc", &c);
    let nc = a.mach().bootstrap_look_up("svc").unwrap();
    assert_ne!(nb, nc);
    assert_eq!(a.insert_port(&c), nc);
    assert_eq!(a.insert_port(&b), nb, "the old name still names B");
}

/// A dead name stays dead: tasks spawned later get new names and never revive it.
#[test]
fn a_dead_name_is_not_revived_by_a_new_task() {
    let rt = runtime();
    let a = spawn(&rt, "(memory 1)");
    let b = spawn(&rt, "(memory 1)");
    let nb = a.insert_port(&b);
    drop(b);
    let b2 = spawn(&rt, "(memory 2)");
    rt.register("b", &b2);
    let n2 = a.mach().bootstrap_look_up("b").unwrap();
    assert_ne!(n2, nb);
    assert_eq!(a.insert_port(&b2), n2);
    assert_dead(&a, nb);
    assert_eq!(b2.memory_pages(), 2, "the dead name did not act on B2");
    assert_eq!(
        a.mach().vm_region(n2, 0),
        Ok(Region {
            address: 0,
            size: 2 * u64::from(P),
            protection: VmProt::DEFAULT,
            max_protection: VmProt::ALL,
        })
    );
}
