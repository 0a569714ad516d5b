//! Loading modules as tasks: the checks that refuse what cannot be a task (each with its
//! `ModuleError` variant and a message naming the cause), and the shapes that are accepted
//! (an imported memory, an unexported one, a start function, data and custom sections,
//! several tasks from one module, files).

use std::path::PathBuf;

use wasmach::{KernReturn, ModuleError, Region, TaskModule, VmProt};
use wasmtime::ExternType;

use crate::common::*;

// --- Helpers. ---

/// Compiles `bytes` and returns the error, which must be a [`ModuleError`].
fn refused(bytes: impl AsRef<[u8]>) -> (anyhow::Error, String) {
    let err = runtime()
        .compile(bytes)
        .expect_err("the module should be refused");
    let message = format!("{err:#}");
    assert!(
        err.downcast_ref::<ModuleError>().is_some(),
        "not a ModuleError: {message}"
    );
    (err, message)
}

/// The [`ModuleError`] inside `err`.
fn module_error(err: &anyhow::Error) -> &ModuleError {
    err.downcast_ref::<ModuleError>()
        .unwrap_or_else(|| panic!("not a ModuleError: {err:#}"))
}

/// Asserts that `message` contains every one of `parts`.
fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(
            message.contains(part),
            "message {message:?} does not mention {part:?}"
        );
    }
}

/// Exports that let a test look at a task's memory from inside the guest.
const LOAD_STORE: &str = r#"
  (func (export "load8") (param i32) (result i32) (i32.load8_u (local.get 0)))
  (func (export "store8") (param i32 i32) (i32.store8 (local.get 0) (local.get 1)))
  (func (export "load32") (param i32) (result i32) (i32.load (local.get 0)))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "size") (result i32) (memory.size))
"#;

/// The one region a fresh task with `pages` initial pages has.
fn initial_region(pages: u32) -> Region {
    Region {
        address: 0,
        size: u64::from(pages) * u64::from(PAGE),
        protection: VmProt::DEFAULT,
        max_protection: VmProt::ALL,
    }
}

/// A small deterministic generator (xorshift64).
struct Rng(u64);

impl Rng {
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                (self.0 >> 24) as u8
            })
            .collect()
    }
}

/// A unique directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "wasmach-modules-{}-{name}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir).expect("create the temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// --- Refusals: the memory. ---

#[test]
fn module_without_memory_is_refused() {
    for wat in [
        "(module)".to_string(),
        "(module (func (export \"f\")))".to_string(),
        format!("(module {MACH_IMPORTS_WAT})"),
    ] {
        let (err, message) = refused(&wat);
        assert_eq!(module_error(&err), &ModuleError::NoMemory, "{wat}");
        assert_mentions(&message, &["no memory", "exactly one linear memory"]);
    }
}

#[test]
fn two_defined_memories_are_refused() {
    let (err, message) = refused("(module (memory 1) (memory 1))");
    assert_eq!(module_error(&err), &ModuleError::TooManyMemories(2));
    assert_mentions(&message, &["2 memories", "exactly one linear memory"]);

    let (err, message) = refused("(module (memory 1) (memory 2) (memory 3))");
    assert_eq!(module_error(&err), &ModuleError::TooManyMemories(3));
    assert_mentions(&message, &["3 memories"]);
}

#[test]
fn imported_and_defined_memories_are_refused() {
    let (err, message) = refused(r#"(module (import "env" "memory" (memory 1)) (memory 1))"#);
    assert_eq!(module_error(&err), &ModuleError::TooManyMemories(2));
    assert_mentions(&message, &["2 memories"]);

    let (err, _) =
        refused(r#"(module (import "env" "m0" (memory 1)) (import "env" "m1" (memory 1)))"#);
    assert_eq!(module_error(&err), &ModuleError::TooManyMemories(2));
}

#[test]
fn memory64_is_refused() {
    for wat in [
        "(module (memory i64 1))",
        r#"(module (import "env" "memory" (memory i64 1 2)))"#,
    ] {
        let (err, message) = refused(wat);
        assert_eq!(module_error(&err), &ModuleError::Memory64, "{wat}");
        assert_mentions(&message, &["64-bit", "wasm32"]);
    }
}

#[test]
fn shared_memory_is_refused() {
    for wat in [
        "(module (memory 1 2 shared))",
        r#"(module (import "env" "memory" (memory 1 2 shared)))"#,
    ] {
        let (err, message) = refused(wat);
        assert_eq!(module_error(&err), &ModuleError::SharedMemory, "{wat}");
        assert_mentions(&message, &["shared"]);
    }
}

#[test]
fn custom_page_size_is_refused() {
    let (err, message) = refused("(module (memory 1 (pagesize 1)))");
    assert_eq!(module_error(&err), &ModuleError::CustomPageSize);
    assert_mentions(&message, &["custom page size", "64 KiB"]);
}

#[test]
fn memory_initial_above_maximum_is_refused() {
    for wat in [
        "(module (memory 2 1))",
        r#"(module (import "env" "memory" (memory 2 1)))"#,
    ] {
        let (err, message) = refused(wat);
        assert_eq!(
            module_error(&err),
            &ModuleError::MemoryLimits {
                initial: 2,
                maximum: Some(1)
            },
            "{wat}"
        );
        assert_mentions(&message, &["limits", "initial 2 pages", "maximum Some(1)"]);
    }
}

#[test]
fn memory_limits_beyond_4gib_are_refused() {
    for (wat, initial, maximum) in [
        ("(module (memory 65537))", 65537, None),
        ("(module (memory 1 65537))", 1, Some(65537)),
        (
            r#"(module (import "env" "memory" (memory 0 70000)))"#,
            0,
            Some(70000),
        ),
    ] {
        let (err, message) = refused(wat);
        assert_eq!(
            module_error(&err),
            &ModuleError::MemoryLimits { initial, maximum },
            "{wat}"
        );
        assert_mentions(&message, &["limits", &format!("initial {initial} pages")]);
    }
}

// --- Refusals: the imports. ---

#[test]
fn unknown_mach_import_is_refused() {
    for name in ["vm_map", "VM_ALLOCATE", "task_terminate", ""] {
        let wat = format!(
            r#"(module (import "mach" "{name}" (func (param i32) (result i32))) (memory 1))"#
        );
        let (err, message) = refused(&wat);
        assert_eq!(
            module_error(&err),
            &ModuleError::UnknownMachImport(name.to_string())
        );
        assert_mentions(
            &message,
            &[&format!("\"mach\".\"{name}\""), "no such Mach call"],
        );
    }
}

/// Compiles a module with the one `"mach"` import `name` of type `ty` and checks the
/// `MachSignature` refusal.
fn assert_bad_signature(name: &str, ty: &str, found: &str, expected: &str) {
    let wat = format!(r#"(module (import "mach" "{name}" (func {ty})) (memory 1))"#);
    let (err, message) = refused(&wat);
    assert_eq!(
        module_error(&err),
        &ModuleError::MachSignature {
            name: name.to_string(),
            found: found.to_string(),
            expected: expected.to_string(),
        },
        "{wat}"
    );
    assert_mentions(
        &message,
        &[&format!("\"mach\".\"{name}\""), found, expected],
    );
}

#[test]
fn mach_import_with_wrong_param_count_is_refused() {
    assert_bad_signature(
        "vm_allocate",
        "(param i32 i32 i32) (result i32)",
        "(i32, i32, i32) -> (i32)",
        "(i32, i32, i32, i32) -> (i32)",
    );
    assert_bad_signature(
        "vm_deallocate",
        "(param i32 i32 i32 i32) (result i32)",
        "(i32, i32, i32, i32) -> (i32)",
        "(i32, i32, i32) -> (i32)",
    );
    assert_bad_signature(
        "mach_task_self",
        "(param i32) (result i32)",
        "(i32) -> (i32)",
        "() -> (i32)",
    );
}

#[test]
fn mach_import_with_i64_param_is_refused() {
    assert_bad_signature(
        "vm_write",
        "(param i32 i64 i32 i32) (result i32)",
        "(i32, i64, i32, i32) -> (i32)",
        "(i32, i32, i32, i32) -> (i32)",
    );
    assert_bad_signature(
        "vm_copy",
        "(param i32 i32 i32 i32) (result i64)",
        "(i32, i32, i32, i32) -> (i64)",
        "(i32, i32, i32, i32) -> (i32)",
    );
}

#[test]
fn mach_import_without_result_is_refused() {
    assert_bad_signature(
        "vm_read",
        "(param i32 i32 i32 i32 i32)",
        "(i32, i32, i32, i32, i32) -> ()",
        "(i32, i32, i32, i32, i32) -> (i32)",
    );
    assert_bad_signature(
        "bootstrap_look_up",
        "(param i32 i32 i32) (result i32 i32)",
        "(i32, i32, i32) -> (i32, i32)",
        "(i32, i32, i32) -> (i32)",
    );
}

#[test]
fn unsupported_function_import_is_refused() {
    let (err, message) =
        refused(r#"(module (import "env" "foo" (func (param i32) (result i32))) (memory 1))"#);
    assert_eq!(
        module_error(&err),
        &ModuleError::UnsupportedImport {
            module: "env".into(),
            name: "foo".into(),
            kind: "function",
        }
    );
    assert_mentions(
        &message,
        &["\"env\".\"foo\"", "function", "unsupported import"],
    );
}

#[test]
fn table_import_is_refused() {
    let (err, message) = refused(r#"(module (import "env" "t" (table 1 funcref)) (memory 1))"#);
    assert_eq!(
        module_error(&err),
        &ModuleError::UnsupportedImport {
            module: "env".into(),
            name: "t".into(),
            kind: "table",
        }
    );
    assert_mentions(&message, &["\"env\".\"t\"", "table"]);
}

#[test]
fn global_import_is_refused() {
    // Also from the "mach" module: only functions are supplied there.
    for (module, name) in [("env", "g"), ("mach", "vm_allocate")] {
        let wat = format!(r#"(module (import "{module}" "{name}" (global i32)) (memory 1))"#);
        let (err, message) = refused(&wat);
        assert_eq!(
            module_error(&err),
            &ModuleError::UnsupportedImport {
                module: module.into(),
                name: name.into(),
                kind: "global",
            }
        );
        assert_mentions(&message, &[&format!("\"{module}\".\"{name}\""), "global"]);
    }
}

#[test]
fn tag_import_is_refused() {
    let (err, message) = refused(r#"(module (import "env" "e" (tag)) (memory 1))"#);
    match module_error(&err) {
        ModuleError::UnsupportedImport { module, name, kind } => {
            assert_eq!((module.as_str(), name.as_str(), *kind), ("env", "e", "tag"));
            assert_mentions(&message, &["\"env\".\"e\"", "tag"]);
        }
        other => panic!("unexpected {other:?}: {message}"),
    }
}

#[test]
fn refusal_of_an_import_does_not_depend_on_its_position() {
    // A bad import after a good "mach" import and the memory import is still found.
    let (err, _) = refused(
        r#"(module
             (import "mach" "mach_task_self" (func (result i32)))
             (import "env" "memory" (memory 1))
             (import "env" "late" (func)))"#,
    );
    assert_eq!(
        module_error(&err),
        &ModuleError::UnsupportedImport {
            module: "env".into(),
            name: "late".into(),
            kind: "function",
        }
    );
}

// --- Refusals: what is not a module. ---

#[test]
fn random_bytes_are_refused() {
    let rt = runtime();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for len in [1, 3, 7, 16, 100, 1000, 4096] {
        let bytes = rng.bytes(len);
        let err = rt.compile(&bytes).expect_err("random bytes");
        let message = format!("{err:#}");
        // Not a wasm header, so taken as text: not WAT.
        assert!(
            matches!(module_error(&err), ModuleError::Wat(_)),
            "len {len}: {message}"
        );
        assert_mentions(&message, &["invalid WAT text"]);
    }
    // A wasm header followed by garbage: never a panic, always a ModuleError.
    for len in [1, 2, 5, 9, 31, 200, 3000] {
        let mut bytes = b"\0asm\x01\0\0\0".to_vec();
        let mut tail = rng.bytes(len);
        // Start with a known section id and a too-long size, so the result is certain.
        tail[0] = 1;
        bytes.extend(tail);
        let err = rt.compile(&bytes).expect_err("garbage after a header");
        assert!(
            matches!(module_error(&err), ModuleError::Invalid(_)),
            "len {len}: {err:#}"
        );
        assert_mentions(&format!("{err:#}"), &["invalid wasm module", "offset"]);
    }
    // A header with a wrong version.
    let err = rt.compile(b"\0asm\x02\0\0\0").expect_err("bad version");
    assert!(
        matches!(module_error(&err), ModuleError::Invalid(_)),
        "{err:#}"
    );
    // The runtime is not harmed by the refusals.
    let task = rt
        .spawn_bytes("(module (memory 1))")
        .expect("spawn after refusals");
    assert_eq!(task.memory_pages(), 1);
}

#[test]
fn truncated_wasm_is_refused_at_every_length() {
    // No identifiers (no name section) and no data: the code section comes last, so no
    // proper prefix is itself a whole module.
    let wasm = wat::parse_str(
        r#"(module
             (import "mach" "mach_task_self" (func (result i32)))
             (memory 1)
             (func (export "f") (result i32) (i32.add (call 0) (i32.const 7))))"#,
    )
    .expect("valid WAT");
    // The whole module is accepted...
    let rt = runtime();
    let task = rt.spawn_bytes(&wasm).expect("the whole module spawns");
    assert_eq!(task.call::<(), i32>("f", ()).unwrap(), 0x103 + 7);
    // ...and each prefix is refused with a ModuleError (the header-only prefix has no
    // memory; a prefix cut inside a section is invalid).
    for len in 0..wasm.len() {
        let err = rt
            .compile(&wasm[..len])
            .expect_err(&format!("prefix of {len} bytes"));
        let error = module_error(&err);
        let message = format!("{err:#}");
        if len < 4 {
            // Not even the magic number: taken as text.
            assert!(matches!(error, ModuleError::Wat(_)), "len {len}: {message}");
        } else {
            // Taken as wasm: never as text.
            assert!(
                matches!(error, ModuleError::Invalid(_) | ModuleError::NoMemory),
                "len {len}: {message}"
            );
        }
    }
    // Cut inside the code section: invalid, and the message says the input ended early.
    for cut in [1, 2, 3] {
        let err = rt.compile(&wasm[..wasm.len() - cut]).unwrap_err();
        assert!(
            matches!(module_error(&err), ModuleError::Invalid(_)),
            "cut {cut}: {err:#}"
        );
        assert_mentions(
            &format!("{err:#}"),
            &["invalid wasm module", "unexpected end-of-file"],
        );
    }
}

#[test]
fn invalid_wat_text_is_refused() {
    for wat in [
        "(module (memory 1)",
        "(module (memory 1) (func (no_such_instruction)))",
        "(module (memory one))",
        "not wat at all",
    ] {
        let (err, message) = refused(wat);
        assert!(
            matches!(module_error(&err), ModuleError::Wat(_)),
            "{wat}: {message}"
        );
        assert_mentions(&message, &["invalid WAT text"]);
    }
    // The text error says what is wrong and where.
    let (_, message) = refused("(module (memory 1) (func (no_such_instruction)))");
    assert_mentions(&message, &["unknown operator", "1:27"]);
}

#[test]
fn module_failing_validation_is_refused() {
    // Well-formed text, but the function leaves nothing where an i32 is due.
    let (err, message) = refused(r#"(module (memory 1) (func (export "f") (result i32)))"#);
    assert!(
        matches!(module_error(&err), ModuleError::Invalid(_)),
        "{message}"
    );
    assert_mentions(&message, &["invalid wasm module", "type mismatch"]);
}

#[test]
fn component_without_exactly_one_memory_is_refused() {
    let component = wat::parse_str("(component)").expect("a component binary");
    assert!(component.starts_with(b"\0asm"));
    let (err, message) = refused(&component);
    assert_eq!(module_error(&err), &ModuleError::NoMemory);
    assert_mentions(&message, &["no memory"]);

    let (err, _) =
        refused("(component (core module (memory 1)) (core module (memory 1) (memory 1)))");
    assert_eq!(module_error(&err), &ModuleError::TooManyMemories(3));
    let (err, _) = refused("(component (core module (memory i64 1)))");
    assert_eq!(module_error(&err), &ModuleError::Memory64);
}

#[test]
fn component_importing_anything_but_wasmach_mach_is_refused() {
    let (err, message) = refused(
        r#"(component
             (import "wasi:cli/environment@0.2.0" (instance))
             (core module (memory 1)))"#,
    );
    assert_eq!(
        module_error(&err),
        &ModuleError::ComponentImport("wasi:cli/environment@0.2.0".into())
    );
    assert_mentions(&message, &["wasi:cli/environment@0.2.0", "wasmach:mach"]);

    // A wasmach:mach interface that the runtime does not define (or a wrong type for one
    // it does) is refused by the linker, naming the import.
    let (err, message) = refused(
        r#"(component
             (import "wasmach:mach/vm@0.1.0" (instance
               (export "vm-allocate" (func (param "x" string)))))
             (core module (memory 1)))"#,
    );
    assert!(
        matches!(module_error(&err), ModuleError::Invalid(_)),
        "{message}"
    );
    assert_mentions(&message, &["vm-allocate"]);
}

#[test]
fn module_exporting_the_reserved_memory_name_is_refused() {
    let (err, message) = refused(r#"(module (memory (export "wasmach:memory") 1))"#);
    assert!(
        matches!(module_error(&err), ModuleError::Invalid(_)),
        "{message}"
    );
    assert_mentions(&message, &["wasmach:memory"]);
}

// --- Accepted shapes: an imported memory. ---

#[test]
fn imported_memory_gets_the_declared_limits() {
    let rt = runtime();
    let module = rt
        .compile(format!(
            r#"(module (import "env" "memory" (memory 2 8)) {LOAD_STORE})"#
        ))
        .expect("compile");
    assert_eq!(module.initial_pages(), 2);
    assert_eq!(module.limit_pages(), 8);
    assert_eq!(module.maximum_pages(), Some(8));
    let task = rt.spawn(&module).expect("spawn");
    assert_eq!(task.memory_pages(), 2);
    assert_eq!(task.regions(), vec![initial_region(2)]);
    assert_eq!(task.call::<(), i32>("size", ()).unwrap(), 2);

    // Page 8 lies past the address space: nothing changes.
    assert_eq!(
        task.vm_allocate(8 * PAGE, PAGE, false),
        Err(KernReturn::InvalidAddress)
    );
    assert_eq!(task.memory_pages(), 2);
    assert_eq!(task.regions(), vec![initial_region(2)]);

    // Page 7, the last one, can be had; the memory grows to 8 pages.
    assert_eq!(task.vm_allocate(7 * PAGE, PAGE, false), Ok(7 * PAGE));
    assert_eq!(task.memory_pages(), 8);
    assert_eq!(task.call::<(), i32>("size", ()).unwrap(), 8);
    // The guest's own growth stops at the maximum too.
    assert_eq!(task.call::<i32, i32>("grow", 1).unwrap(), -1);
    // Anywhere-allocation finds no room beyond the limit once the free pages are used.
    for _ in 2..7 {
        task.vm_allocate(0, PAGE, true)
            .expect("a free page below the limit");
    }
    assert_eq!(task.vm_allocate(0, PAGE, true), Err(KernReturn::NoSpace));
}

#[test]
fn imported_memory_is_read_and_written_normally() {
    let rt = runtime();
    let task = rt
        .spawn_bytes(format!(
            r#"(module (import "env" "memory" (memory 2 8)) {LOAD_STORE})"#
        ))
        .expect("spawn");
    // Host writes, guest loads.
    let data = pattern(5, PAGE as usize);
    task.vm_write(PAGE, &data).expect("vm_write");
    for offset in [0u32, 1, 1000, PAGE - 1] {
        assert_eq!(
            task.call::<i32, i32>("load8", (PAGE + offset) as i32)
                .unwrap(),
            i32::from(data[offset as usize])
        );
    }
    // Guest stores, host reads.
    task.call::<(i32, i32), ()>("store8", (10, 0xab)).unwrap();
    let page0 = task.vm_read(0, PAGE).expect("vm_read");
    let mut expected = vec![0u8; PAGE as usize];
    expected[10] = 0xab;
    assert_eq!(page0, expected);
}

#[test]
fn imported_memory_without_maximum_spans_4gib() {
    let rt = runtime();
    let module = rt
        .compile(format!(
            r#"(module (import "env" "memory" (memory 1)) {LOAD_STORE})"#
        ))
        .expect("compile");
    assert_eq!(
        (
            module.initial_pages(),
            module.limit_pages(),
            module.maximum_pages()
        ),
        (1, 65536, None)
    );
    let task = rt.spawn(&module).expect("spawn");
    assert_eq!(task.regions(), vec![initial_region(1)]);
    assert_eq!(task.vm_allocate(100 * PAGE, PAGE, false), Ok(100 * PAGE));
    assert_eq!(task.memory_pages(), 101);
    task.vm_write(100 * PAGE, &pattern(9, PAGE as usize))
        .expect("vm_write");
    assert_eq!(
        task.call::<i32, i32>("load8", (100 * PAGE + 3) as i32)
            .unwrap(),
        i32::from(pattern(9, 4)[3])
    );
}

#[test]
fn imported_memory_between_mach_imports_keeps_function_indices() {
    // The memory import sits between two function imports; the rewrite drops it, and the
    // calls must still reach the right functions.
    let rt = runtime();
    let task = rt
        .spawn_bytes(
            r#"(module
                 (import "mach" "mach_task_self" (func $self (result i32)))
                 (import "env" "memory" (memory 1 4))
                 (import "mach" "vm_allocate" (func $alloc (param i32 i32 i32 i32) (result i32)))
                 (func (export "self") (result i32) (call $self))
                 (func (export "alloc") (result i32)
                   (call $alloc (call $self) (i32.const 0) (i32.const 65536) (i32.const 1)))
                 (func (export "load32") (param i32) (result i32) (i32.load (local.get 0))))"#,
        )
        .expect("spawn");
    assert_eq!(task.call::<(), i32>("self", ()).unwrap(), 0x103);
    assert_eq!(task.call::<(), i32>("alloc", ()).unwrap(), 0);
    // The new page is page 1, written back at address 0; the memory grew.
    assert_eq!(task.call::<i32, i32>("load32", 0).unwrap(), PAGE as i32);
    assert_eq!(task.memory_pages(), 2);
    assert_eq!(task.regions(), vec![initial_region(2)]);
}

#[test]
fn imported_memory_with_data_segments_and_no_other_import() {
    let rt = runtime();
    let task = rt
        .spawn_bytes(
            r#"(module
                 (import "env" "memory" (memory 1 1))
                 (data (i32.const 100) "imported"))"#,
        )
        .expect("spawn");
    let page = task.vm_read(0, PAGE).expect("vm_read");
    assert_eq!(&page[100..108], b"imported");
    assert!(page[..100].iter().all(|&b| b == 0));
    assert!(page[108..].iter().all(|&b| b == 0));
    assert_eq!(
        task.vm_allocate(PAGE, PAGE, false),
        Err(KernReturn::InvalidAddress)
    );
}

// --- Accepted shapes: the memory's export. ---

#[test]
fn unexported_memory_is_reachable_by_the_host() {
    let rt = runtime();
    let module = rt
        .compile(format!("(module (memory 2) {LOAD_STORE})"))
        .expect("compile");
    let memory_exports: Vec<String> = module
        .module()
        .expect("a core module")
        .exports()
        .filter(|e| matches!(e.ty(), ExternType::Memory(_)))
        .map(|e| e.name().to_string())
        .collect();
    assert_eq!(memory_exports, vec!["wasmach:memory".to_string()]);

    let task = rt.spawn(&module).expect("spawn");
    let data = pattern(77, PAGE as usize);
    task.vm_write(PAGE, &data).expect("vm_write");
    assert_eq!(
        task.call::<i32, i32>("load32", (PAGE + 8) as i32).unwrap(),
        i32::from_le_bytes(data[8..12].try_into().unwrap())
    );
    task.call::<(i32, i32), ()>("store8", (3, 0x5a)).unwrap();
    assert_eq!(task.vm_read(0, PAGE).unwrap()[3], 0x5a);
}

#[test]
fn memory_exported_under_its_own_name_keeps_that_export() {
    let rt = runtime();
    let module = rt
        .compile(format!(
            r#"(module
                 (memory (export "mem") 1)
                 (global (export "answer") i32 (i32.const 42))
                 (table (export "tab") 1 funcref)
                 {LOAD_STORE})"#
        ))
        .expect("compile");
    let exports: Vec<(String, &'static str)> = module
        .module()
        .expect("a core module")
        .exports()
        .map(|e| {
            let kind = match e.ty() {
                ExternType::Memory(_) => "memory",
                ExternType::Global(_) => "global",
                ExternType::Table(_) => "table",
                ExternType::Func(_) => "func",
                _ => "other",
            };
            (e.name().to_string(), kind)
        })
        .collect();
    for wanted in [
        ("mem", "memory"),
        ("wasmach:memory", "memory"),
        ("answer", "global"),
        ("tab", "table"),
        ("load8", "func"),
        ("store8", "func"),
    ] {
        assert!(
            exports.contains(&(wanted.0.to_string(), wanted.1)),
            "{wanted:?} missing from {exports:?}"
        );
    }
    let task = rt.spawn(&module).expect("spawn");
    task.call::<(i32, i32), ()>("store8", (7, 9)).unwrap();
    assert_eq!(task.vm_read(0, PAGE).unwrap()[7], 9);
    assert_eq!(task.call::<i32, i32>("load8", 7).unwrap(), 9);
}

// --- Accepted shapes: start function, data, sections. ---

#[test]
fn start_function_calling_mach_imports_works() {
    let rt = runtime();
    let wat = guest(
        "(memory 1)",
        r#"
        (func $start
          (i32.store (i32.const 0) (call $mach_task_self))
          ;; vm_allocate(self, &addr at 8, one page, anywhere): grows the memory
          (i32.store (i32.const 4)
            (call $vm_allocate (call $mach_task_self) (i32.const 8) (i32.const 65536) (i32.const 1))))
        (start $start)
        "#,
    );
    let task = rt.spawn_bytes(&wat).expect("spawn");
    assert_eq!(task.memory_pages(), 2);
    assert_eq!(task.regions(), vec![initial_region(2)]);
    let page0 = task.vm_read(0, PAGE).expect("vm_read");
    let word = |i: usize| u32::from_le_bytes(page0[i..i + 4].try_into().unwrap());
    assert_eq!(word(0), 0x103, "mach_task_self");
    assert_eq!(word(4), 0, "KERN_SUCCESS");
    assert_eq!(word(8), PAGE, "the new page's address");
    // The new page reads as zero.
    assert_eq!(task.vm_read(PAGE, PAGE).unwrap(), vec![0u8; PAGE as usize]);
}

#[test]
fn start_function_trap_fails_the_spawn_without_panic() {
    let rt = runtime();
    let module = rt
        .compile("(module (memory 1) (func $s unreachable) (start $s))")
        .expect("a trapping start function still compiles");
    let err = rt.spawn(&module).expect_err("the start function traps");
    assert_eq!(
        err.downcast_ref::<wasmtime::Trap>(),
        Some(&wasmtime::Trap::UnreachableCodeReached),
        "{err:#}"
    );
    // The runtime lives on.
    let task = rt.spawn_bytes("(module (memory 1))").expect("spawn");
    assert_eq!(task.memory_pages(), 1);
}

#[test]
fn out_of_bounds_data_segment_fails_the_spawn_without_panic() {
    let rt = runtime();
    let module = rt
        .compile(r#"(module (memory 1) (data (i32.const 65535) "ab"))"#)
        .expect("compiles: the bounds are checked at instantiation");
    let err = rt.spawn(&module).expect_err("the segment does not fit");
    assert_eq!(
        err.downcast_ref::<wasmtime::Trap>(),
        Some(&wasmtime::Trap::MemoryOutOfBounds),
        "{err:#}"
    );
    assert_mentions(&format!("{err:#}"), &["instantiation"]);
    // The runtime is not harmed.
    assert_eq!(
        rt.spawn_bytes("(module (memory 1))")
            .unwrap()
            .memory_pages(),
        1
    );
}

#[test]
fn data_segments_land_in_the_task_memory() {
    let rt = runtime();
    let task = rt
        .spawn_bytes(
            r#"(module
                 (memory 3)
                 (data (i32.const 16) "hello")
                 (data (i32.const 65539) "\01\02\03\ff")
                 (data (i32.const 196605) "end"))"#,
        )
        .expect("spawn");
    let all = task.vm_read(0, 3 * PAGE).expect("vm_read");
    let mut expected = vec![0u8; 3 * PAGE as usize];
    expected[16..21].copy_from_slice(b"hello");
    expected[65539..65543].copy_from_slice(&[1, 2, 3, 0xff]);
    expected[196605..196608].copy_from_slice(b"end");
    assert_eq!(all, expected);
}

#[test]
fn name_section_survives_the_rewrite() {
    let rt = runtime();
    for memory in ["(memory 1)", r#"(import "env" "memory" (memory 1))"#] {
        let module = rt
            .compile(format!(
                r#"(module $m {memory} (func $f (export "f") (result i32) (i32.const 5)))"#
            ))
            .expect("compile");
        assert_eq!(
            module.module().expect("a core module").name(),
            Some("m"),
            "{memory}"
        );
        let task = rt.spawn(&module).expect("spawn");
        assert_eq!(task.call::<(), i32>("f", ()).unwrap(), 5);
    }
}

#[test]
fn custom_sections_anywhere_still_compile() {
    let rt = runtime();
    for (memory, place) in [
        ("(memory 1 4)", "memory"),
        (r#"(import "env" "memory" (memory 1 4))"#, "import"),
    ] {
        let wat = format!(
            r#"(module $named
                 (@custom "c-first" (before first) "0")
                 (@custom "c-type" (after type) "1")
                 (@custom "c-import" (after import) "2")
                 (@custom "c-func" (after func) "3")
                 (@custom "c-table" (after table) "4")
                 (@custom "c-memory" (after memory) "5")
                 (@custom "c-global" (after global) "6")
                 (@custom "c-export" (after export) "7")
                 (@custom "c-start" (after start) "8")
                 (@custom "c-elem" (after elem) "9")
                 (@custom "c-code" (after code) "a")
                 (@custom "c-data" (after data) "b")
                 (@custom "c-last" (after last) "c")
                 (import "mach" "mach_task_self" (func $self (result i32)))
                 {memory}
                 (table 1 funcref)
                 (global $g (mut i32) (i32.const 0))
                 (elem (i32.const 0) $f)
                 (func $f (export "f") (result i32) (i32.add (call $self) (global.get $g)))
                 (func $s (global.set $g (i32.const 1)))
                 (start $s)
                 (data (i32.const 32) "data"))"#
        );
        let module = rt
            .compile(&wat)
            .unwrap_or_else(|e| panic!("{place}: {e:#}"));
        assert_eq!(
            module.module().expect("a core module").name(),
            Some("named"),
            "{place}"
        );
        let task = rt.spawn(&module).expect("spawn");
        assert_eq!(task.call::<(), i32>("f", ()).unwrap(), 0x104, "{place}");
        assert_eq!(&task.vm_read(0, PAGE).unwrap()[32..36], b"data");
        assert_eq!(module.limit_pages(), 4);
    }
}

// --- Accepted shapes: one module, several tasks. ---

#[test]
fn one_module_spawns_independent_tasks() {
    let rt = runtime();
    let module = rt
        .compile(format!(
            r#"(module
                 (memory 1)
                 (global $n (mut i32) (i32.const 0))
                 (func (export "bump") (result i32)
                   (global.set $n (i32.add (global.get $n) (i32.const 1)))
                   (global.get $n))
                 (data (i32.const 0) "seed")
                 {LOAD_STORE})"#
        ))
        .expect("compile");
    let a = rt.spawn(&module).expect("spawn a");
    let b = rt.spawn(&module).expect("spawn b");
    let c = rt.spawn(&module).expect("spawn c");
    assert_ne!(a.id(), b.id());

    // Host write to a: b and c still see the data segment only.
    let data = pattern(1, PAGE as usize);
    a.vm_write(0, &data).expect("vm_write");
    let mut fresh = vec![0u8; PAGE as usize];
    fresh[..4].copy_from_slice(b"seed");
    assert_eq!(a.vm_read(0, PAGE).unwrap(), data);
    assert_eq!(b.vm_read(0, PAGE).unwrap(), fresh);
    assert_eq!(c.vm_read(0, PAGE).unwrap(), fresh);

    // Guest store in b: not seen in a or c.
    b.call::<(i32, i32), ()>("store8", (100, 0xee)).unwrap();
    assert_eq!(b.call::<i32, i32>("load8", 100).unwrap(), 0xee);
    assert_eq!(
        a.call::<i32, i32>("load8", 100).unwrap(),
        i32::from(data[100])
    );
    assert_eq!(c.call::<i32, i32>("load8", 100).unwrap(), 0);

    // Allocation in c: only c grows.
    assert_eq!(c.vm_allocate(0, PAGE, true), Ok(PAGE));
    assert_eq!(c.memory_pages(), 2);
    assert_eq!(a.memory_pages(), 1);
    assert_eq!(b.memory_pages(), 1);
    assert_eq!(a.regions(), vec![initial_region(1)]);

    // Globals are per task.
    assert_eq!(a.call::<(), i32>("bump", ()).unwrap(), 1);
    assert_eq!(a.call::<(), i32>("bump", ()).unwrap(), 2);
    assert_eq!(b.call::<(), i32>("bump", ()).unwrap(), 1);

    // Terminating one leaves the others working; the module spawns again.
    a.terminate();
    assert_eq!(b.vm_read(0, PAGE).unwrap()[100], 0xee);
    let d = rt.spawn(&module).expect("spawn d");
    assert_eq!(d.vm_read(0, PAGE).unwrap(), fresh);
}

#[test]
fn task_module_reports_its_page_counts() {
    let rt = runtime();
    let cases: [(&str, u32, u32, Option<u32>); 6] = [
        ("(memory 3)", 3, 65536, None),
        ("(memory 1 10)", 1, 10, Some(10)),
        ("(memory 0 0)", 0, 0, Some(0)),
        ("(memory 2 65536)", 2, 65536, Some(65536)),
        (r#"(import "env" "memory" (memory 2 8))"#, 2, 8, Some(8)),
        (r#"(import "x" "y" (memory 0))"#, 0, 65536, None),
    ];
    for (memory, initial, limit, maximum) in cases {
        let module: TaskModule = rt
            .compile(format!("(module {memory})"))
            .unwrap_or_else(|e| panic!("{memory}: {e:#}"));
        assert_eq!(module.initial_pages(), initial, "{memory}");
        assert_eq!(module.limit_pages(), limit, "{memory}");
        assert_eq!(module.maximum_pages(), maximum, "{memory}");
        let task = rt.spawn(&module).expect("spawn");
        assert_eq!(task.memory_pages(), initial, "{memory}");
    }
}

#[test]
fn memory_of_zero_pages_starts_empty() {
    let rt = runtime();
    let task = rt
        .spawn_bytes(format!("(module (memory 0 4) {LOAD_STORE})"))
        .expect("spawn");
    assert_eq!(task.memory_pages(), 0);
    assert!(task.regions().is_empty());
    assert_eq!(task.vm_region(0), Err(KernReturn::NoSpace));
    assert_eq!(task.vm_allocate(0, PAGE, true), Ok(0));
    assert_eq!(task.memory_pages(), 1);
    assert_eq!(task.regions(), vec![initial_region(1)]);
    assert_eq!(task.call::<i32, i32>("load8", 5).unwrap(), 0);
}

#[test]
fn memory_of_zero_maximum_has_no_room() {
    let rt = runtime();
    let task = rt.spawn_bytes("(module (memory 0 0))").expect("spawn");
    assert_eq!(task.vm_allocate(0, PAGE, true), Err(KernReturn::NoSpace));
    assert_eq!(
        task.vm_allocate(0, PAGE, false),
        Err(KernReturn::InvalidAddress)
    );
    assert!(task.regions().is_empty());
}

// --- Files. ---

const FILE_WAT: &str = r#"(module
  (memory 2 6)
  (data (i32.const 4) "from a file")
  (func (export "answer") (result i32) (i32.const 42)))"#;

#[test]
fn compile_file_and_spawn_file_read_wat() {
    let dir = TempDir::new("wat");
    let path = dir.0.join("guest.wat");
    std::fs::write(&path, FILE_WAT).unwrap();
    let rt = runtime();
    let module = rt.compile_file(&path).expect("compile_file");
    assert_eq!(
        (
            module.initial_pages(),
            module.limit_pages(),
            module.maximum_pages()
        ),
        (2, 6, Some(6))
    );
    let task = rt.spawn_file(&path).expect("spawn_file");
    assert_eq!(task.call::<(), i32>("answer", ()).unwrap(), 42);
    assert_eq!(&task.vm_read(0, PAGE).unwrap()[4..15], b"from a file");
    assert_eq!(task.memory_pages(), 2);
}

#[test]
fn compile_file_and_spawn_file_read_wasm() {
    let dir = TempDir::new("wasm");
    let path = dir.0.join("guest.wasm");
    std::fs::write(&path, wat::parse_str(FILE_WAT).unwrap()).unwrap();
    let rt = runtime();
    let module = rt.compile_file(&path).expect("compile_file");
    assert_eq!(module.limit_pages(), 6);
    let task = rt.spawn_file(&path).expect("spawn_file");
    assert_eq!(task.call::<(), i32>("answer", ()).unwrap(), 42);
    assert_eq!(&task.vm_read(0, PAGE).unwrap()[4..15], b"from a file");

    // Told apart by content, not by extension: text in a .wasm file is still read.
    let text = dir.0.join("text.wasm");
    std::fs::write(&text, FILE_WAT).unwrap();
    assert_eq!(rt.compile_file(&text).expect("text").initial_pages(), 2);
}

#[test]
fn compile_file_of_a_missing_path_names_the_path() {
    let dir = TempDir::new("missing");
    let path = dir.0.join("no-such-guest.wasm");
    let rt = runtime();
    for err in [
        rt.compile_file(&path).expect_err("missing file"),
        rt.spawn_file(&path).expect_err("missing file"),
    ] {
        let message = format!("{err:#}");
        assert_mentions(&message, &[&path.display().to_string()]);
        assert_eq!(
            err.downcast_ref::<std::io::Error>().map(|e| e.kind()),
            Some(std::io::ErrorKind::NotFound),
            "{message}"
        );
    }
}

#[test]
fn compile_file_of_a_refused_module_names_the_path_and_the_cause() {
    let dir = TempDir::new("refused");
    let path = dir.0.join("no-memory.wat");
    std::fs::write(&path, "(module (func))").unwrap();
    let err = runtime().compile_file(&path).expect_err("no memory");
    assert_eq!(module_error(&err), &ModuleError::NoMemory);
    assert_mentions(
        &format!("{err:#}"),
        &[&path.display().to_string(), "no memory"],
    );
}
