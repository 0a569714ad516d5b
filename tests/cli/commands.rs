//! The `wasmach run` and `wasmach inspect` contract: output lines, naming, traps and refusals.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{repo, stderr, stdout, wasmach};

/// A fresh directory for one test's files.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wasmach-cli-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn demo_tasks_exchange_a_page_and_agree_on_its_checksum() {
    let out = wasmach(&[
        "run",
        "guests/wat/mailbox.wat",
        "guests/wat/producer.wat",
        "guests/wat/consumer.wat",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], "mailbox: 0 65536");
    let produced: Vec<&str> = lines[1].split(' ').collect();
    let consumed: Vec<&str> = lines[2].split(' ').collect();
    assert_eq!(produced[..2], ["producer:", "0"]);
    assert_eq!(consumed[..2], ["consumer:", "0"]);
    assert_eq!(
        produced[2], consumed[2],
        "the consumer's copy differs: {text}"
    );
    // the sealed page refuses the consumer's write: KERN_PROTECTION_FAILURE
    assert_eq!(consumed[3], "2");
}

#[test]
fn names_default_to_the_file_stem_and_name_equals_path_overrides() {
    let dir = scratch("names");
    let wat = "(module (memory 1) (func (export \"_start\") (result i32) (i32.const -1)))";
    let a = write(&dir, "alpha.wat", wat);
    let b = write(&dir, "beta.wat", wat);
    let out = wasmach(&["run", &a, &format!("gamma={b}")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "alpha: -1\ngamma: -1\n");
}

#[test]
fn tasks_run_in_command_line_order_and_find_each_other_by_name() {
    let dir = scratch("order");
    let first = write(
        &dir,
        "first.wat",
        r#"(module (memory 1) (func (export "_start") (i32.store (i32.const 0) (i32.const 42))))"#,
    );
    let second = write(
        &dir,
        "second.wat",
        r#"(module
             (import "mach" "bootstrap_look_up" (func $look_up (param i32 i32 i32) (result i32)))
             (import "mach" "vm_read_overwrite" (func $rd (param i32 i32 i32 i32 i32) (result i32)))
             (memory 2)
             (data (i32.const 8) "one")
             (func (export "_start") (result i32 i32)
               (drop (call $look_up (i32.const 8) (i32.const 3) (i32.const 0)))
               (call $rd (i32.load (i32.const 0)) (i32.const 0) (i32.const 65536) (i32.const 65536) (i32.const 4))
               (i32.load (i32.const 65536))))"#,
    );
    let out = wasmach(&["run", &format!("one={first}"), &second]);
    assert!(out.status.success(), "{}", stderr(&out));
    // `one` ran first (no results: a bare name), then `second` read its 42
    assert_eq!(stdout(&out), "one:\nsecond: 0 42\n");
}

#[test]
fn invoke_calls_only_the_tasks_that_export_the_function() {
    let dir = scratch("invoke");
    let with = write(
        &dir,
        "with.wat",
        r#"(module (memory 1) (func (export "go") (result i32 i64) (i32.const 7) (i64.const -8)))"#,
    );
    let without = write(&dir, "without.wat", "(module (memory 1))");
    let out = wasmach(&["run", "--invoke", "go", &with, &without]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "with: 7 -8\n");
}

#[test]
fn a_trap_is_reported_and_the_run_goes_on_with_exit_status_1() {
    let dir = scratch("trap");
    let bad = write(
        &dir,
        "bad.wat",
        r#"(module (memory 1) (func (export "_start") unreachable))"#,
    );
    let good = write(
        &dir,
        "good.wat",
        r#"(module (memory 1) (func (export "_start") (result i32) (i32.const 1)))"#,
    );
    let out = wasmach(&["run", &bad, &good]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "good: 1\n");
    let err = stderr(&out);
    assert!(err.starts_with("bad: trap: "), "{err}");
    assert!(err.contains("unreachable"), "{err}");
}

#[test]
fn wasm_binaries_are_told_from_text_by_content() {
    let dir = scratch("binary");
    let wasm = wat::parse_str(
        r#"(module (memory 1) (func (export "_start") (result i32) (i32.const 5)))"#,
    )
    .unwrap();
    // a binary with a .wat name is still a binary
    let path = write(&dir, "odd.wat", wasm);
    let out = wasmach(&["run", &path]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "odd: 5\n");
}

#[test]
fn an_unreadable_file_runs_nothing_and_exits_2() {
    let dir = scratch("missing");
    let good = write(
        &dir,
        "good.wat",
        r#"(module (memory 1) (func (export "_start") (result i32) (i32.const 1)))"#,
    );
    let missing = dir.join("nowhere.wasm").to_string_lossy().into_owned();
    let out = wasmach(&["run", &good, &missing]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), "", "nothing may run");
    assert!(stderr(&out).contains("nowhere.wasm"), "{}", stderr(&out));
}

#[test]
fn a_refused_module_is_named_with_its_cause_and_nothing_runs() {
    let dir = scratch("refused");
    let good = write(
        &dir,
        "good.wat",
        r#"(module (memory 1) (func (export "_start") (result i32) (i32.const 1)))"#,
    );
    let cases = [
        ("nomem.wat", "(module)", "no memory"),
        (
            "badimport.wat",
            r#"(module (import "mach" "vm_teleport" (func)) (memory 1))"#,
            "vm_teleport",
        ),
        ("garbage.wasm", "\0asm\x01\0\0\0\x7f\x7f", "invalid wasm"),
        ("text.wat", "(module (memory 1) (func (i32.add)))", "nvalid"),
    ];
    for (name, contents, cause) in cases {
        let path = write(&dir, name, contents);
        let out = wasmach(&["run", &good, &path]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert_eq!(stdout(&out), "", "{name}: nothing may run");
        let err = stderr(&out);
        assert!(err.contains(name), "{name}: {err}");
        assert!(err.contains(cause), "{name}: {err}");
    }
}

#[test]
fn an_entry_function_with_parameters_is_refused_before_anything_runs() {
    let dir = scratch("params");
    let good = write(
        &dir,
        "good.wat",
        r#"(module (memory 1) (func (export "_start") (result i32) (i32.const 1)))"#,
    );
    let takes = write(
        &dir,
        "takes.wat",
        r#"(module (memory 1) (func (export "_start") (param i32)))"#,
    );
    let out = wasmach(&["run", &good, &takes]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), "");
    assert!(stderr(&out).contains("takes.wat"), "{}", stderr(&out));
}

#[test]
fn two_modules_with_one_name_are_refused() {
    let dir = scratch("dupe");
    let a = write(&dir, "a.wat", "(module (memory 1))");
    let out = wasmach(&["run", &a, &format!("a={a}")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("`a`"), "{}", stderr(&out));
}

/// A guest that loops for ever, and one that answers.
const SPIN: &str = r#"(module (memory 1) (func (export "_start") (loop $l (br $l))))"#;
const ANSWER: &str = r#"(module (memory 1) (func (export "_start") (result i32) (i32.const 42)))"#;

#[test]
fn fuel_stops_a_looping_task_and_the_run_goes_on() {
    let dir = scratch("fuel");
    let spin = write(&dir, "spin.wat", SPIN);
    let answer = write(&dir, "answer.wat", ANSWER);
    let out = wasmach(&["run", "--fuel", "100000", &spin, &answer]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "answer: 42\n");
    assert!(
        stderr(&out).contains("spin: trap: ") && stderr(&out).contains("fuel"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn timeout_interrupts_a_looping_task_and_the_run_goes_on() {
    let dir = scratch("timeout");
    let spin = write(&dir, "spin.wat", SPIN);
    let answer = write(&dir, "answer.wat", ANSWER);
    let out = wasmach(&["run", "--timeout", "200ms", &spin, &answer]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "answer: 42\n");
    assert!(
        stderr(&out).contains("spin: trap: ") && stderr(&out).contains("interrupt"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn max_memory_caps_memory_grow_and_vm_allocate() {
    let dir = scratch("maxmem");
    let bomb = write(
        &dir,
        "bomb.wat",
        r#"(module
             (import "mach" "vm_allocate" (func $alloc (param i32 i32 i32 i32) (result i32)))
             (import "mach" "mach_task_self" (func $self (result i32)))
             (memory 1)
             (func (export "_start") (result i32 i32)
               (local $n i32)
               (block $full (loop $l
                 (br_if $full (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
                 (local.set $n (i32.add (local.get $n) (i32.const 1)))
                 (br $l)))
               (local.get $n)
               (call $alloc (call $self) (i32.const 0) (i32.const 65536) (i32.const 1))))"#,
    );
    let out = wasmach(&["run", "--max-memory", "1MiB", &bomb]);
    assert!(out.status.success(), "{}", stderr(&out));
    // 16 pages in all: 15 grown, then vm_allocate is KERN_NO_SPACE (3)
    assert_eq!(stdout(&out), "bomb: 15 3\n");
}

#[test]
fn parallel_runs_every_task_and_prints_in_command_line_order() {
    let dir = scratch("parallel");
    let paths: Vec<String> = (0..4)
        .map(|i| {
            let wat = format!(
                r#"(module (memory 1) (func (export "_start") (result i32) (i32.const {i})))"#
            );
            write(&dir, &format!("t{i}.wat"), wat)
        })
        .collect();
    let bad = write(
        &dir,
        "bad.wat",
        r#"(module (memory 1) (func (export "_start") unreachable))"#,
    );
    let mut args = vec!["run", "--parallel"];
    args.extend(paths.iter().map(String::as_str));
    args.push(&bad);
    let out = wasmach(&args);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "t0: 0\nt1: 1\nt2: 2\nt3: 3\n");
    assert!(stderr(&out).starts_with("bad: trap: "), "{}", stderr(&out));
}

#[test]
fn vmmap_lists_each_tasks_regions_with_protections() {
    let out = wasmach(&[
        "run",
        "--vmmap",
        "guests/wat/mailbox.wat",
        "guests/wat/producer.wat",
        "guests/wat/consumer.wat",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("==== mailbox: 2 regions, memory 2 pages\n"),
        "{text}"
    );
    // the sealed page: read-only, maximum read-only
    assert!(
        text.contains("00010000-00020000       64K  r--/r--\n"),
        "{text}"
    );
    assert!(
        text.contains("==== consumer: 1 region, memory 2 pages\n"),
        "{text}"
    );
    assert!(
        text.contains("00000000-00020000      128K  rw-/rwx\n"),
        "{text}"
    );
}

#[test]
fn inspect_describes_memory_imports_exports_and_mach_calls() {
    let out = wasmach(&["inspect", "guests/wat/producer.wat"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("memory: initial 2 pages (128 KiB), no maximum"),
        "{text}"
    );
    assert!(
        text.contains("  mach.vm_write: func (i32, i32, i32, i32) -> (i32)\n"),
        "{text}"
    );
    assert!(text.contains("  _start: func () -> (i32, i32)\n"), "{text}");
    assert!(!text.contains("wasmach:memory"), "{text}");
    assert!(
        text.ends_with("mach calls: vm_protect, vm_write, bootstrap_look_up\n"),
        "{text}"
    );
}

#[test]
fn inspect_names_the_file_and_the_cause_of_a_refusal() {
    let dir = scratch("inspect");
    let nomem = write(&dir, "nomem.wat", "(module)");
    let out = wasmach(&["inspect", &nomem]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("nomem.wat") && stderr(&out).contains("no memory"),
        "{}",
        stderr(&out)
    );
    let out = wasmach(&["inspect", &dir.join("absent.wasm").to_string_lossy()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("absent.wasm"), "{}", stderr(&out));
}

#[test]
fn bad_option_values_are_refused_with_a_message() {
    for (option, value) in [
        ("--timeout", "soon"),
        ("--max-memory", "lots"),
        ("--fuel", "plenty"),
    ] {
        let out = wasmach(&["run", option, value, "guests/wat/mailbox.wat"]);
        assert_eq!(out.status.code(), Some(2), "{option} {value}");
        assert!(stderr(&out).contains(option), "{option}: {}", stderr(&out));
        assert_eq!(stdout(&out), "");
    }
}

#[test]
fn rust_log_debug_shows_each_vm_call_with_its_code() {
    let out = Command::new(crate::WASMACH)
        .args([
            "run",
            "guests/wat/mailbox.wat",
            "guests/wat/producer.wat",
            "guests/wat/consumer.wat",
        ])
        .current_dir(repo())
        .env("RUST_LOG", "wasmach=debug")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let log = stderr(&out);
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("vm call")).collect();
    // mailbox: vm_allocate; producer: look-up, vm_write, vm_protect; consumer: look-up,
    // vm_read, and the refused vm_write
    assert_eq!(lines.len(), 7, "{log}");
    assert!(
        lines[0].contains("call=\"vm_allocate\"") && lines[0].contains("KERN_SUCCESS"),
        "{log}"
    );
    assert!(
        lines[6].contains("call=\"vm_write\"") && lines[6].contains("KERN_PROTECTION_FAILURE"),
        "{log}"
    );
    // and without RUST_LOG, nothing is logged
    assert!(!stderr(&wasmach(&["run", "guests/wat/mailbox.wat"])).contains("vm call"));
}

#[test]
fn guest_protection_is_on_unless_turned_off() {
    let dir = scratch("protection");
    // The guest frees its page 1, then stores into it.
    let guest = write(
        &dir,
        "poker.wat",
        r#"(module
             (import "mach" "vm_deallocate" (func $free (param i32 i32 i32) (result i32)))
             (import "mach" "mach_task_self" (func $self (result i32)))
             (memory 2)
             (func (export "_start") (result i32)
               (drop (call $free (call $self) (i32.const 65536) (i32.const 65536)))
               (i32.store (i32.const 65540) (i32.const 7))
               (i32.load (i32.const 65540))))"#,
    );
    let out = wasmach(&["run", &guest]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("poker: trap: ") && err.contains("memory fault at wasm address 0x10004"),
        "{err}"
    );
    let out = wasmach(&["run", "--no-guest-protection", &guest]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "poker: 7\n");
}
