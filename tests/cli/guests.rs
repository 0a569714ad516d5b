//! The Rust guest programs of `guests/` (built for wasm32 by the `wasmach-guests` crate's
//! build script) run through `wasmach run` and described by `wasmach inspect`. The same
//! programs through the runtime's API are `tests/all/guests.rs`.

use wasmach_guests::{
    C_CONSUMER, C_ERRORS, C_PRODUCER, COMPONENT, CONSUMER, GUARD, PRODUCER, SNAPSHOTTER,
};

use crate::oracle::{expected_records, pattern_a, shown};
use crate::{stderr, stdout, wasmach};

#[test]
fn wasmach_run_runs_the_rust_demo() {
    let out = wasmach(&[
        "run",
        "guests/wat/mailbox.wat",
        PRODUCER,
        CONSUMER,
        SNAPSHOTTER,
        GUARD,
        COMPONENT,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert_eq!(lines[0], "mailbox: 0 65536");
    let produced = lines[1].strip_prefix("producer: ").expect(lines[1]);
    assert_eq!(produced, shown(&expected_records()).to_string());
    assert_eq!(lines[2], format!("consumer: {produced}"));
    // The snapshotter writes pattern A, snapshots it and leaves pattern B; the guard then
    // seals the page, so the component's vm-write is refused: -KERN_PROTECTION_FAILURE.
    assert_eq!(lines[3], format!("snapshotter: {}", shown(&pattern_a())));
    assert_eq!(lines[4], "guard: 2");
    assert_eq!(lines[5], "component: -2");

    // The component before the guard succeeds.
    let out = wasmach(&["run", "guests/wat/mailbox.wat", COMPONENT, "--vmmap"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!(
            "mailbox: 0 65536\ncomponent: {}\n",
            shown(&pattern_a())
        )),
        "{text}"
    );
    assert!(text.contains("==== component: "), "{text}");
}

#[test]
fn the_demo_prints_the_same_with_physical_virtual_and_automatic_copies() {
    let run = |mode: &str| {
        let out = wasmach(&[
            "run",
            "--copy",
            mode,
            "guests/wat/mailbox.wat",
            PRODUCER,
            CONSUMER,
            SNAPSHOTTER,
            GUARD,
            COMPONENT,
        ]);
        assert!(out.status.success(), "--copy {mode}: {}", stderr(&out));
        stdout(&out)
    };
    let physical = run("physical");
    assert_eq!(physical.lines().count(), 6, "{physical}");
    assert_eq!(run("virtual"), physical);
    assert_eq!(run("auto"), physical);
    let out = wasmach(&["run", "--copy", "lazy", "guests/wat/mailbox.wat"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("possible values: physical, virtual, auto"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_large_snapshot_demo_agrees_in_every_mode_and_says_how_it_copied() {
    for (mode, copies) in [
        ("physical", "physical"),
        ("virtual", "virtual"),
        ("auto", "virtual"),
    ] {
        let out = wasmach(&[
            "run",
            "--copy",
            mode,
            "--stats",
            "guests/wat/archive.wat",
            "guests/wat/snapshot.wat",
        ]);
        assert!(out.status.success(), "--copy {mode}: {}", stderr(&out));
        assert_eq!(
            stdout(&out),
            "archive: 65536 1024\nsnapshot: 0 1024 0\n",
            "--copy {mode}"
        );
        let err = stderr(&out);
        assert!(err.contains("entry calls took"), "{err}");
        assert!(err.contains("peak resident memory"), "{err}");
        assert!(err.contains(&format!("{copies} copies")), "{err}");
    }
}

#[test]
fn wasmach_inspect_describes_rust_guests_and_the_component() {
    let out = wasmach(&["inspect", PRODUCER]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("memory: initial 17 pages"), "{text}");
    assert!(text.contains("_start: func () -> (i64)"), "{text}");
    // The runtime's checked bulk-memory imports are its own business.
    assert!(!text.contains("wasmach:bulk"), "{text}");
    assert!(
        text.contains(
            "mach calls: vm_allocate, vm_deallocate, vm_write, mach_task_self, bootstrap_look_up"
        ),
        "{text}"
    );

    let out = wasmach(&["inspect", COMPONENT]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("component: "), "{text}");
    assert!(text.contains("wasmach:mach/vm@0.1.0: instance"), "{text}");
    assert!(
        text.contains(
            "vm-read: func(target: u32, address: u32, size: u32) -> result<list<u8>, enum>"
        ),
        "{text}"
    );
    assert!(text.contains("run: func() -> s64"), "{text}");
    assert!(text.contains("mach calls: vm_allocate, vm_deallocate, vm_read, vm_write, vm_region, mach_task_self, bootstrap_look_up"), "{text}");
}

#[test]
fn wasmach_run_runs_the_c_guests_next_to_the_rust_ones() {
    let out = wasmach(&[
        "run",
        "guests/wat/mailbox.wat",
        &format!("c_producer={C_PRODUCER}"),
        CONSUMER,
        &format!("c_consumer={C_CONSUMER}"),
        C_ERRORS,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let produced = shown(&expected_records());
    assert_eq!(
        stdout(&out),
        format!(
            "mailbox: 0 65536\nc_producer: {produced}\nconsumer: {produced}\nc_consumer: {produced}\nerrors: 0\n"
        )
    );
}
