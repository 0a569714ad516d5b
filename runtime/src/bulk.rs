//! The bulk-memory instructions under guest protection.
//!
//! With guest protection on, a task's mapping follows its protection table, so its own
//! loads and stores fault on a forbidden page, and wasmtime turns the fault into a trap:
//! they run in JIT code, whose memory accesses wasmtime knows may fault. `memory.copy`,
//! `memory.fill` and `memory.init` are different: wasmtime runs them in host code (a
//! libcall) or inlines small constant ones as accesses it has already bounds-checked, and a
//! fault there kills the process. So the loader rewrites every one of them (and `data.drop`,
//! which `memory.init` depends on) into a call to an import of [`BULK_MODULE`], defined
//! here: each checks the wasm bounds (a `MemoryOutOfBounds` trap, as the instruction
//! would), then the table under the task's map lock, and only then moves the bytes, still
//! under the lock. A forbidden page is a `MemoryOutOfBounds` trap too, whose message names
//! the address. Holding the lock for the whole instruction is what makes a concurrent
//! `vm_protect` or `vm_deallocate` from another thread safe: it waits for the copy, and
//! the next instruction sees its result.

use std::sync::Arc;

use wasm_encoder::reencode::{self, Reencode};
use wasm_encoder::{EntityType, Function, Instruction};
use wasmparser::{DataKind, FunctionBody, Operator, Parser, Payload, TypeRef};
use wasmtime::{Caller, Linker, Trap};

use crate::space::AddressSpace;
use crate::task::TaskData;

/// The import module of the checked bulk instructions; reserved (a module importing from
/// it itself is refused like any other unknown import).
pub const BULK_MODULE: &str = "wasmach:bulk";

/// The imports the rewrite adds, in order, with their parameter counts (no results).
const IMPORTS: [(&str, usize); 4] = [
    ("memory.copy", 3),
    ("memory.fill", 3),
    ("memory.init", 4),
    ("data.drop", 1),
];

/// A `memory.copy`, `memory.fill` or `memory.init` of a task that its protection table
/// forbids. It is the context of a [`Trap::MemoryOutOfBounds`], so the error downcasts to
/// both. (A plain load or store that the table forbids is wasmtime's own
/// `MemoryOutOfBounds`, whose message names the address too.)
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{instruction}: memory fault at wasm address {address:#x}: the page is not {} (protection table)",
    if *.write { "writable" } else { "readable" }
)]
pub struct GuestFault {
    /// The instruction.
    pub instruction: &'static str,
    /// The first address it may not touch.
    pub address: u32,
    /// Whether the denied access is a write.
    pub write: bool,
}

/// A module's data segments, which `memory.init` copies from.
#[derive(Debug)]
pub(crate) struct DataSegments {
    /// Each segment's bytes, and whether it is active (dropped once instantiated).
    segments: Vec<(Vec<u8>, bool)>,
}

/// A task's segments: the module's, and which of them this instance has dropped.
#[derive(Debug)]
pub(crate) struct TaskSegments {
    module: Arc<DataSegments>,
    dropped: Vec<bool>,
}

impl TaskSegments {
    /// A new instance's view: active segments are dropped, passive ones not.
    pub(crate) fn new(module: Arc<DataSegments>) -> TaskSegments {
        let dropped = module.segments.iter().map(|&(_, active)| active).collect();
        TaskSegments { module, dropped }
    }

    /// The live bytes of segment `index` (empty once dropped).
    fn bytes(&self, index: u32) -> &[u8] {
        match (
            self.module.segments.get(index as usize),
            self.dropped.get(index as usize),
        ) {
            (Some((bytes, _)), Some(false)) => bytes,
            _ => &[],
        }
    }
}

/// Rewrites every bulk-memory instruction of `wasm` (a checked core module) into a call
/// of the [`BULK_MODULE`] imports. Returns the module unchanged, with no segments, if it
/// has no such instruction.
pub(crate) fn rewrite(wasm: Vec<u8>) -> Result<(Vec<u8>, Option<DataSegments>), String> {
    let scan = scan(&wasm).map_err(|e| e.to_string())?;
    if !scan.uses_bulk {
        return Ok((wasm, None));
    }
    let mut rewriter = Rewriter {
        func_imports: scan.func_imports,
        types: scan.types,
        has_imports: scan.has_imports,
        emitted_imports: false,
    };
    let mut module = wasm_encoder::Module::new();
    rewriter
        .parse_core_module(&mut module, Parser::new(0), &wasm)
        .map_err(|e| format!("cannot rewrite the bulk-memory instructions: {e}"))?;
    Ok((
        module.finish(),
        Some(DataSegments {
            segments: scan.segments,
        }),
    ))
}

/// What the rewrite needs to know of a module before it starts.
struct Scan {
    uses_bulk: bool,
    func_imports: u32,
    types: u32,
    has_imports: bool,
    segments: Vec<(Vec<u8>, bool)>,
}

fn scan(wasm: &[u8]) -> wasmparser::Result<Scan> {
    let mut scan = Scan {
        uses_bulk: false,
        func_imports: 0,
        types: 0,
        has_imports: false,
        segments: Vec::new(),
    };
    for payload in Parser::new(0).parse_all(wasm) {
        match payload? {
            Payload::TypeSection(reader) => {
                for group in reader {
                    scan.types += group?.types().len() as u32;
                }
            }
            Payload::ImportSection(reader) => {
                scan.has_imports = true;
                for import in reader.into_imports() {
                    if matches!(import?.ty, TypeRef::Func(_) | TypeRef::FuncExact(_)) {
                        scan.func_imports += 1;
                    }
                }
            }
            // The data section follows the code, so by now it is known whether the
            // segments will be needed.
            Payload::DataSection(reader) if scan.uses_bulk => {
                for data in reader {
                    let data = data?;
                    let active = matches!(data.kind, DataKind::Active { .. });
                    scan.segments.push((data.data.to_vec(), active));
                }
            }
            Payload::CodeSectionEntry(body) => {
                scan.uses_bulk |= uses_bulk(&body)?;
            }
            _ => {}
        }
    }
    Ok(scan)
}

fn uses_bulk(body: &FunctionBody<'_>) -> wasmparser::Result<bool> {
    let mut reader = body.get_operators_reader()?;
    while !reader.eof() {
        if matches!(
            reader.read()?,
            Operator::MemoryCopy { .. }
                | Operator::MemoryFill { .. }
                | Operator::MemoryInit { .. }
                | Operator::DataDrop { .. }
        ) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The re-encoder: appends the imports (and their types) and shifts every defined
/// function's index past them.
struct Rewriter {
    func_imports: u32,
    types: u32,
    has_imports: bool,
    emitted_imports: bool,
}

type ReencodeResult<T> = Result<T, reencode::Error>;

impl Rewriter {
    /// The function index of import `i` of [`IMPORTS`].
    fn import(&self, i: u32) -> u32 {
        self.func_imports + i
    }

    fn add_imports(&mut self, section: &mut wasm_encoder::ImportSection) {
        for (i, (name, _)) in IMPORTS.iter().enumerate() {
            section.import(
                BULK_MODULE,
                name,
                EntityType::Function(self.types + i as u32),
            );
        }
        self.emitted_imports = true;
    }
}

impl Reencode for Rewriter {
    type Error = std::convert::Infallible;

    fn function_index(&mut self, func: u32) -> ReencodeResult<u32> {
        Ok(if func < self.func_imports {
            func
        } else {
            func + IMPORTS.len() as u32
        })
    }

    fn parse_type_section(
        &mut self,
        types: &mut wasm_encoder::TypeSection,
        section: wasmparser::TypeSectionReader<'_>,
    ) -> ReencodeResult<()> {
        reencode::utils::parse_type_section(self, types, section)?;
        for (_, params) in IMPORTS {
            types
                .ty()
                .function(vec![wasm_encoder::ValType::I32; params], []);
        }
        Ok(())
    }

    fn parse_import_section(
        &mut self,
        imports: &mut wasm_encoder::ImportSection,
        section: wasmparser::ImportSectionReader<'_>,
    ) -> ReencodeResult<()> {
        reencode::utils::parse_import_section(self, imports, section)?;
        self.add_imports(imports);
        Ok(())
    }

    fn intersperse_section_hook(
        &mut self,
        module: &mut wasm_encoder::Module,
        _after: Option<wasm_encoder::SectionId>,
        before: Option<wasm_encoder::SectionId>,
    ) -> ReencodeResult<()> {
        // A module without an import section gets one right after its types.
        let past_imports = before.is_none_or(|id| id as u8 > wasm_encoder::SectionId::Import as u8);
        if !self.has_imports && !self.emitted_imports && past_imports {
            let mut imports = wasm_encoder::ImportSection::new();
            self.add_imports(&mut imports);
            module.section(&imports);
        }
        Ok(())
    }

    fn parse_function_body(
        &mut self,
        code: &mut wasm_encoder::CodeSection,
        body: FunctionBody<'_>,
    ) -> ReencodeResult<()> {
        let mut f: Function = self.new_function_with_parsed_locals(&body)?;
        let mut reader = body.get_operators_reader()?;
        while !reader.eof() {
            match reader.read()? {
                Operator::MemoryCopy { .. } => {
                    f.instruction(&Instruction::Call(self.import(0)));
                }
                Operator::MemoryFill { .. } => {
                    f.instruction(&Instruction::Call(self.import(1)));
                }
                Operator::MemoryInit { data_index, .. } => {
                    f.instruction(&Instruction::I32Const(data_index as i32));
                    f.instruction(&Instruction::Call(self.import(2)));
                }
                Operator::DataDrop { data_index } => {
                    f.instruction(&Instruction::I32Const(data_index as i32));
                    f.instruction(&Instruction::Call(self.import(3)));
                }
                op => {
                    f.instruction(&self.instruction(op)?);
                }
            }
        }
        code.function(&f);
        Ok(())
    }
}

/// A trap for an access the wasm bounds forbid, as the instruction itself would trap.
fn out_of_bounds() -> wasmtime::Error {
    wasmtime::Error::new(Trap::MemoryOutOfBounds)
}

/// A trap for an access the protection table forbids.
fn fault(instruction: &'static str, address: u32, write: bool) -> wasmtime::Error {
    wasmtime::Error::new(Trap::MemoryOutOfBounds).context(GuestFault {
        instruction,
        address,
        write,
    })
}

/// Whether `[start, start + len)` lies inside `size` bytes.
fn in_bounds(start: u32, len: u32, size: u64) -> bool {
    u64::from(start) + u64::from(len) <= size
}

/// `memory.copy`: checks, then `memmove`s under the map lock.
fn memory_copy(space: &AddressSpace, dst: u32, src: u32, len: u32) -> wasmtime::Result<()> {
    let state = space.lock();
    let size = space.byte_size();
    if !in_bounds(src, len, size) || !in_bounds(dst, len, size) {
        return Err(out_of_bounds());
    }
    if let Some(a) = state.map.guest_denies(src, len, false) {
        return Err(fault("memory.copy", a, false));
    }
    if let Some(a) = state.map.guest_denies(dst, len, true) {
        return Err(fault("memory.copy", a, true));
    }
    // SAFETY: both ranges lie inside the committed memory (bounds checked against its
    // size), the source's pages are readable and the destination's writable in the table,
    // hence in the mapping, which changes only under the map lock held until the copy is
    // done. `ptr::copy` allows the overlap `memory.copy` allows.
    unsafe { std::ptr::copy(space.at(src), space.at(dst), len as usize) };
    Ok(())
}

/// `memory.fill`.
fn memory_fill(space: &AddressSpace, dst: u32, value: u32, len: u32) -> wasmtime::Result<()> {
    let state = space.lock();
    if !in_bounds(dst, len, space.byte_size()) {
        return Err(out_of_bounds());
    }
    if let Some(a) = state.map.guest_denies(dst, len, true) {
        return Err(fault("memory.fill", a, true));
    }
    // SAFETY: the range lies inside the committed memory and its pages are writable in the
    // table, hence in the mapping, which changes only under the map lock still held.
    unsafe { std::ptr::write_bytes(space.at(dst), value as u8, len as usize) };
    Ok(())
}

/// `memory.init` from segment `index` of the task's module.
fn memory_init(
    space: &AddressSpace,
    segments: Option<&TaskSegments>,
    dst: u32,
    src: u32,
    len: u32,
    index: u32,
) -> wasmtime::Result<()> {
    let bytes = segments.map_or(&[][..], |s| s.bytes(index));
    let state = space.lock();
    if !in_bounds(src, len, bytes.len() as u64) || !in_bounds(dst, len, space.byte_size()) {
        return Err(out_of_bounds());
    }
    if let Some(a) = state.map.guest_denies(dst, len, true) {
        return Err(fault("memory.init", a, true));
    }
    // SAFETY: the destination lies inside the committed memory and its pages are writable
    // in the table, hence in the mapping (which changes only under the map lock still
    // held); the source is `len` bytes of the segment, host memory disjoint from it.
    unsafe {
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr().add(src as usize),
            space.at(dst),
            len as usize,
        )
    };
    Ok(())
}

/// Defines the [`BULK_MODULE`] imports in `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<TaskData>) -> anyhow::Result<()> {
    linker.func_wrap(
        BULK_MODULE,
        IMPORTS[0].0,
        |c: Caller<'_, TaskData>, dst: u32, src: u32, len: u32| {
            memory_copy(&c.data().task.space, dst, src, len)
        },
    )?;
    linker.func_wrap(
        BULK_MODULE,
        IMPORTS[1].0,
        |c: Caller<'_, TaskData>, dst: u32, value: u32, len: u32| {
            memory_fill(&c.data().task.space, dst, value, len)
        },
    )?;
    linker.func_wrap(
        BULK_MODULE,
        IMPORTS[2].0,
        |c: Caller<'_, TaskData>, dst: u32, src: u32, len: u32, index: u32| {
            let data = c.data();
            memory_init(
                &data.task.space,
                data.segments.as_ref(),
                dst,
                src,
                len,
                index,
            )
        },
    )?;
    linker.func_wrap(
        BULK_MODULE,
        IMPORTS[3].0,
        |mut c: Caller<'_, TaskData>, index: u32| {
            if let Some(dropped) = c
                .data_mut()
                .segments
                .as_mut()
                .and_then(|s| s.dropped.get_mut(index as usize))
            {
                *dropped = true;
            }
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(wat: &str) -> Vec<u8> {
        let wasm = wat::parse_str(wat).unwrap();
        rewrite(wasm).unwrap().0
    }

    fn imports(wasm: &[u8]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for payload in Parser::new(0).parse_all(wasm) {
            if let Payload::ImportSection(reader) = payload.unwrap() {
                for import in reader.into_imports() {
                    let import = import.unwrap();
                    out.push((import.module.to_owned(), import.name.to_owned()));
                }
            }
        }
        out
    }

    #[test]
    fn bulk_instructions_become_calls_and_function_indices_shift() {
        let wasm = rewritten(
            r#"(module
                 (import "mach" "mach_task_self" (func $self (result i32)))
                 (memory 1)
                 (data $d "abc")
                 (table 1 funcref) (elem (i32.const 0) $f)
                 (func $f (export "f") (result i32)
                   (memory.copy (i32.const 0) (i32.const 8) (i32.const 4))
                   (memory.fill (i32.const 0) (i32.const 1) (i32.const 4))
                   (memory.init $d (i32.const 0) (i32.const 0) (i32.const 3))
                   (data.drop $d)
                   (call $g))
                 (func $g (result i32) (call $self))
                 (start $h) (func $h))"#,
        );
        wasmparser::Validator::new().validate_all(&wasm).unwrap();
        let printed = wasmprinter::print_bytes(&wasm).unwrap();
        for line in printed.lines().map(str::trim) {
            for absent in ["memory.copy", "memory.fill", "memory.init", "data.drop"] {
                assert!(!line.starts_with(absent), "{absent} left in:\n{printed}");
            }
        }
        assert_eq!(
            imports(&wasm),
            vec![
                ("mach".into(), "mach_task_self".into()),
                (BULK_MODULE.into(), "memory.copy".into()),
                (BULK_MODULE.into(), "memory.fill".into()),
                (BULK_MODULE.into(), "memory.init".into()),
                (BULK_MODULE.into(), "data.drop".into()),
            ]
        );
        // $f was function 1, $g 2, $h 3: each moved past the four imports, wherever it
        // is named (export, start, element segment, call, name section).
        let (mut export, mut start, mut elem, mut names) = (None, None, None, Vec::new());
        for payload in Parser::new(0).parse_all(&wasm) {
            match payload.unwrap() {
                Payload::ExportSection(r) => {
                    export = Some(r.into_iter().next().unwrap().unwrap().index)
                }
                Payload::StartSection { func, .. } => start = Some(func),
                Payload::ElementSection(r) => {
                    if let wasmparser::ElementItems::Functions(f) =
                        r.into_iter().next().unwrap().unwrap().items
                    {
                        elem = Some(f.into_iter().next().unwrap().unwrap());
                    }
                }
                Payload::CustomSection(c) => {
                    if let wasmparser::KnownCustom::Name(n) = c.as_known() {
                        for sub in n {
                            if let wasmparser::Name::Function(map) = sub.unwrap() {
                                names = map
                                    .into_iter()
                                    .map(|n| {
                                        let n = n.unwrap();
                                        (n.index, n.name.to_owned())
                                    })
                                    .collect();
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        assert_eq!((export, start, elem), (Some(5), Some(7), Some(5)));
        assert!(names.contains(&(5, "f".to_owned())), "{names:?}");
        assert!(names.contains(&(6, "g".to_owned())), "{names:?}");
        assert!(printed.contains("call $g"), "{printed}");
    }

    #[test]
    fn a_module_without_imports_gets_an_import_section_in_place() {
        let wasm = rewritten(
            r#"(module (memory 1)
                 (func (export "f") (memory.fill (i32.const 0) (i32.const 1) (i32.const 4))))"#,
        );
        wasmparser::Validator::new().validate_all(&wasm).unwrap();
        assert_eq!(imports(&wasm).len(), 4);
    }

    #[test]
    fn a_module_without_bulk_instructions_is_unchanged() {
        let wasm = wat::parse_str(r#"(module (memory 1) (func (export "f")))"#).unwrap();
        let (out, segments) = rewrite(wasm.clone()).unwrap();
        assert_eq!(out, wasm);
        assert!(segments.is_none());
    }

    #[test]
    fn guest_faults_name_the_address() {
        let e = fault("memory.copy", 0x20000, true);
        assert_eq!(e.downcast_ref::<Trap>(), Some(&Trap::MemoryOutOfBounds));
        assert!(format!("{e:#}").contains("0x20000"), "{e:#}");
    }
}
