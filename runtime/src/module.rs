//! Loading a module as a task image: parsing, the checks that refuse what a task cannot
//! be, and the rewrite every core module gets (the bulk-instruction rewrite, under guest
//! protection, is [`crate::rewrite`]'s): the memory is always defined by the module
//! (an imported one becomes defined, with the declared limits), so that wasmtime creates it
//! through the runtime's `MemoryCreator`, and exported under a reserved name, so that the
//! runtime holds a handle to it even when the module does not export it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wasm_encoder::{
    EntityType, ExportKind, ExportSection, ImportSection, MemorySection, RawSection,
};
use wasmparser::{CompositeInnerType, ExternalKind, Parser, Payload, TypeRef, ValType};

use crate::kern::{MAX_PAGES, PAGE_SHIFT};
use crate::names::MEMORY_EXPORT;
use crate::segments::DataSegments;
use crate::task_state::TaskData;

/// Why a module cannot be a task. Returned (inside an [`anyhow::Error`]) by
/// [`Runtime::compile`](crate::Runtime::compile) and the spawn methods.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModuleError {
    /// The text is neither a wasm binary nor valid WAT.
    #[error("invalid WAT text: {0}")]
    Wat(String),
    /// The binary is malformed or does not validate.
    #[error("invalid wasm module: {0}")]
    Invalid(String),
    /// A component imports something other than the `wasmach:mach` interfaces.
    #[error(
        "unsupported component import `{0}`: a component task may import only the wasmach:mach interfaces (wit/mach.wit)"
    )]
    ComponentImport(String),
    /// The module has no linear memory.
    #[error("the module has no memory: a task needs exactly one linear memory")]
    NoMemory,
    /// The module has more than one linear memory.
    #[error("the module has {0} memories: a task needs exactly one linear memory")]
    TooManyMemories(usize),
    /// The memory is 64-bit.
    #[error("the module's memory is 64-bit: wasmach address spaces are wasm32")]
    Memory64,
    /// The memory is shared.
    #[error("the module's memory is shared: wasmach does not support shared memories")]
    SharedMemory,
    /// The memory uses a custom page size.
    #[error("the module's memory has a custom page size: wasmach pages are 64 KiB")]
    CustomPageSize,
    /// The memory's initial size is above its maximum or above 4 GiB.
    #[error(
        "the module's memory limits are out of range: initial {initial} pages, maximum {maximum:?}"
    )]
    MemoryLimits {
        /// The initial size in pages.
        initial: u64,
        /// The maximum size in pages.
        maximum: Option<u64>,
    },
    /// A `"mach"` import names no Mach call.
    #[error("unknown import \"mach\".\"{0}\": no such Mach call")]
    UnknownMachImport(String),
    /// A `"mach"` import has the wrong type.
    #[error("import \"mach\".\"{name}\" has type {found}, expected {expected}")]
    MachSignature {
        /// The import name.
        name: String,
        /// The type the module declares.
        found: String,
        /// The type of the Mach call.
        expected: String,
    },
    /// An import the runtime does not supply.
    #[error(
        "unsupported import \"{module}\".\"{name}\" ({kind}): a task may import only \"mach\" functions and its memory"
    )]
    UnsupportedImport {
        /// The import module.
        module: String,
        /// The import name.
        name: String,
        /// What kind of item it is.
        kind: &'static str,
    },
}

/// The shape of a task's memory, from the module.
#[derive(Clone, Debug)]
pub(crate) struct MemoryPlan {
    /// Initial pages.
    pub(crate) initial: u32,
    /// The address-space limit in pages: the declared maximum, or 65536.
    pub(crate) limit: u32,
    /// The declared maximum, if any.
    pub(crate) maximum: Option<u32>,
}

/// A compiled, checked module, ready to be spawned as any number of tasks. Cheap to clone.
#[derive(Clone)]
pub struct TaskModule {
    pub(crate) inner: Arc<ModuleInner>,
}

pub(crate) struct ModuleInner {
    /// The program's number in the process ([`next_program`]): a spawn-pool reservation
    /// remembers the program its last task ran.
    pub(crate) program: u64,
    pub(crate) image: Image,
    pub(crate) memory: MemoryPlan,
    /// The data segments, when the bulk-memory instructions were rewritten.
    pub(crate) segments: Option<Arc<DataSegments>>,
}

/// A number no compiled module of the process had before (from 1).
pub(crate) fn next_program() -> u64 {
    static PROGRAMS: AtomicU64 = AtomicU64::new(1);
    PROGRAMS.fetch_add(1, Ordering::Relaxed)
}

/// What a task is instantiated from.
pub(crate) enum Image {
    /// A core module, linked against the `"mach"` imports.
    Core(wasmtime::InstancePre<TaskData>),
    /// A component, linked against the `wasmach:mach` interfaces.
    Component(wasmtime::component::InstancePre<TaskData>),
}

impl TaskModule {
    /// The compiled wasmtime module (with its memory defined and exported as
    /// `"wasmach:memory"`), or `None` for a component.
    pub fn module(&self) -> Option<&wasmtime::Module> {
        match &self.inner.image {
            Image::Core(pre) => Some(pre.module()),
            Image::Component(_) => None,
        }
    }

    /// The compiled component, or `None` for a core module.
    pub fn component(&self) -> Option<&wasmtime::component::Component> {
        match &self.inner.image {
            Image::Core(_) => None,
            Image::Component(pre) => Some(pre.component()),
        }
    }

    /// The memory's initial size in pages.
    pub fn initial_pages(&self) -> u32 {
        self.inner.memory.initial
    }

    /// The address-space limit in pages (the declared maximum, or 65536).
    pub fn limit_pages(&self) -> u32 {
        self.inner.memory.limit
    }

    /// The memory's declared maximum in pages, if any.
    pub fn maximum_pages(&self) -> Option<u32> {
        self.inner.memory.maximum
    }
}

impl std::fmt::Debug for TaskModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskModule")
            .field("memory", &self.inner.memory)
            .finish_non_exhaustive()
    }
}

/// A checked binary, ready to compile.
pub(crate) enum Prepared {
    /// A core module whose one memory is defined and exported as [`MEMORY_EXPORT`] (and,
    /// when asked, whose bulk-memory instructions call the checked imports of
    /// [`crate::bulk`], with its data segments).
    Core(Vec<u8>, MemoryPlan, Option<DataSegments>),
    /// A component with exactly one core memory, importing only `wasmach:mach`.
    Component(Vec<u8>, MemoryPlan),
}

/// Turns WAT text or wasm bytes into a checked core module (rewritten as the runtime needs;
/// `checked_bulk`: with the bulk-memory instructions made checked calls) or component, and
/// its memory's plan.
pub(crate) fn prepare(bytes: &[u8], checked_bulk: bool) -> Result<Prepared, ModuleError> {
    let wasm = if bytes.starts_with(b"\0asm") {
        std::borrow::Cow::Borrowed(bytes)
    } else {
        std::borrow::Cow::Owned(
            wat::parse_bytes(bytes)
                .map_err(|e| ModuleError::Wat(e.to_string()))?
                .into_owned(),
        )
    };
    if Parser::is_component(&wasm) {
        let plan = inspect_component(&wasm)?;
        return Ok(Prepared::Component(wasm.into_owned(), plan));
    }
    let shape = inspect(&wasm)?;
    let wasm = rewrite(&wasm, &shape)?;
    let (wasm, segments) = if checked_bulk {
        crate::rewrite::rewrite(wasm).map_err(ModuleError::Invalid)?
    } else {
        (wasm, None)
    };
    Ok(Prepared::Core(wasm, shape.plan, segments))
}

/// The WIT package prefix of every interface a component task may import.
const COMPONENT_IMPORT_PREFIX: &str = "wasmach:mach/";

/// Checks a component: its imports are `wasmach:mach` interfaces, and its core modules
/// define exactly one memory (the task's address space; memories imported by core
/// modules are that one, passed between the component's core instances).
fn inspect_component(wasm: &[u8]) -> Result<MemoryPlan, ModuleError> {
    let mut memories = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(invalid)? {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth -= 1,
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let name = import.map_err(invalid)?.name.name;
                    if !name.starts_with(COMPONENT_IMPORT_PREFIX) {
                        return Err(ModuleError::ComponentImport(name.to_owned()));
                    }
                }
            }
            Payload::MemorySection(reader) => {
                for ty in reader {
                    memories.push(plan_for(&ty.map_err(invalid)?)?);
                }
            }
            _ => {}
        }
    }
    match memories.len() {
        0 => Err(ModuleError::NoMemory),
        1 => Ok(memories.remove(0)),
        n => Err(ModuleError::TooManyMemories(n)),
    }
}

struct Shape {
    plan: MemoryPlan,
    /// Whether the memory is imported (and must become defined).
    imported: bool,
    /// `(name, type index)` of every `"mach"` function import.
    func_imports: Vec<(String, u32)>,
}

fn invalid(e: wasmparser::BinaryReaderError) -> ModuleError {
    ModuleError::Invalid(e.to_string())
}

fn plan_for(ty: &wasmparser::MemoryType) -> Result<MemoryPlan, ModuleError> {
    if ty.memory64 {
        return Err(ModuleError::Memory64);
    }
    if ty.shared {
        return Err(ModuleError::SharedMemory);
    }
    if ty.page_size_log2.is_some_and(|p| p != PAGE_SHIFT) {
        return Err(ModuleError::CustomPageSize);
    }
    let limit = ty.maximum.unwrap_or(u64::from(MAX_PAGES));
    if limit > u64::from(MAX_PAGES) || ty.initial > limit {
        return Err(ModuleError::MemoryLimits {
            initial: ty.initial,
            maximum: ty.maximum,
        });
    }
    Ok(MemoryPlan {
        initial: ty.initial as u32,
        limit: limit as u32,
        maximum: ty.maximum.map(|m| m as u32),
    })
}

fn describe(params: &[ValType], results: &[ValType]) -> String {
    let list = |v: &[ValType]| {
        v.iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("({}) -> ({})", list(params), list(results))
}

type FuncSig = (Vec<ValType>, Vec<ValType>);

/// Checks one `"mach"` import against the call's signature.
fn check_mach_import(name: &str, sig: Option<FuncSig>) -> Result<(), ModuleError> {
    let Some(expected_params) = crate::names::param_count(name) else {
        return Err(ModuleError::UnknownMachImport(name.into()));
    };
    let (params, results) = sig.ok_or_else(|| {
        ModuleError::Invalid(format!("import \"mach\".\"{name}\" has no function type"))
    })?;
    let want_params = vec![ValType::I32; expected_params];
    let want_results = [ValType::I32];
    if params != want_params || results != want_results {
        return Err(ModuleError::MachSignature {
            name: name.into(),
            found: describe(&params, &results),
            expected: describe(&want_params, &want_results),
        });
    }
    Ok(())
}

/// Checks the module's memories and imports.
fn inspect(wasm: &[u8]) -> Result<Shape, ModuleError> {
    let mut func_types: Vec<Option<FuncSig>> = Vec::new();
    let mut memories: Vec<(MemoryPlan, bool)> = Vec::new();
    let mut func_imports = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(invalid)? {
            Payload::TypeSection(reader) => {
                for group in reader {
                    for sub in group.map_err(invalid)?.into_types() {
                        func_types.push(match &sub.composite_type.inner {
                            CompositeInnerType::Func(f) => {
                                Some((f.params().to_vec(), f.results().to_vec()))
                            }
                            _ => None,
                        });
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(invalid)?;
                    let unsupported = |kind| ModuleError::UnsupportedImport {
                        module: import.module.into(),
                        name: import.name.into(),
                        kind,
                    };
                    match import.ty {
                        TypeRef::Memory(ty) => memories.push((plan_for(&ty)?, true)),
                        TypeRef::Func(index) | TypeRef::FuncExact(index)
                            if import.module == "mach" =>
                        {
                            check_mach_import(
                                import.name,
                                func_types.get(index as usize).cloned().flatten(),
                            )?;
                            func_imports.push((import.name.to_string(), index));
                        }
                        TypeRef::Func(_) | TypeRef::FuncExact(_) => {
                            return Err(unsupported("function"));
                        }
                        TypeRef::Table(_) => return Err(unsupported("table")),
                        TypeRef::Global(_) => return Err(unsupported("global")),
                        TypeRef::Tag(_) => return Err(unsupported("tag")),
                    }
                }
            }
            Payload::MemorySection(reader) => {
                for ty in reader {
                    memories.push((plan_for(&ty.map_err(invalid)?)?, false));
                }
            }
            _ => {}
        }
    }
    let count = memories.len();
    match (memories.pop(), count) {
        (None, _) => Err(ModuleError::NoMemory),
        (Some((plan, imported)), 1) => Ok(Shape {
            plan,
            imported,
            func_imports,
        }),
        (Some(_), n) => Err(ModuleError::TooManyMemories(n)),
    }
}

/// Section ids in their required order (custom sections, id 0, may appear anywhere).
fn section_rank(id: u8) -> u8 {
    match id {
        1 => 1,   // type
        2 => 2,   // import
        3 => 3,   // function
        4 => 4,   // table
        5 => 5,   // memory
        13 => 6,  // tag
        6 => 7,   // global
        7 => 8,   // export
        8 => 9,   // start
        9 => 10,  // element
        12 => 11, // data count
        10 => 12, // code
        11 => 13, // data
        _ => 0,
    }
}

/// One section of the rewritten module.
enum OutSection<'a> {
    Raw(RawSection<'a>),
    Import(ImportSection),
    Memory(MemorySection),
    Export(ExportSection),
}

/// Rebuilds the module so that its one memory is defined and exported as
/// [`MEMORY_EXPORT`]. Every index stays the same: memory 0 is the only memory, and a memory
/// import shifts no function, table or global index.
fn rewrite(wasm: &[u8], shape: &Shape) -> Result<Vec<u8>, ModuleError> {
    // (rank, section): a custom section takes the rank of the section before it, so a
    // stable sort by rank keeps it in place while the new sections slot in.
    let mut sections: Vec<(u8, OutSection<'_>)> = Vec::new();
    let mut rank = 0;
    let mut exports = ExportSection::new();
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(invalid)?;
        if let Payload::ExportSection(reader) = &payload {
            for export in reader.clone() {
                let export = export.map_err(invalid)?;
                let kind = match export.kind {
                    ExternalKind::Func | ExternalKind::FuncExact => ExportKind::Func,
                    ExternalKind::Table => ExportKind::Table,
                    ExternalKind::Memory => ExportKind::Memory,
                    ExternalKind::Global => ExportKind::Global,
                    ExternalKind::Tag => ExportKind::Tag,
                };
                exports.export(export.name, kind, export.index);
            }
            continue;
        }
        let Some((id, range)) = payload.as_section() else {
            continue;
        };
        if id != 0 {
            rank = section_rank(id);
        }
        if id == 2 && shape.imported {
            continue; // rebuilt below without the memory import
        }
        sections.push((
            rank,
            OutSection::Raw(RawSection {
                id,
                data: &wasm[range],
            }),
        ));
    }
    if shape.imported {
        let mut imports = ImportSection::new();
        for (name, ty) in &shape.func_imports {
            imports.import("mach", name, EntityType::Function(*ty));
        }
        if !shape.func_imports.is_empty() {
            sections.push((section_rank(2), OutSection::Import(imports)));
        }
        let mut memories = MemorySection::new();
        memories.memory(wasm_encoder::MemoryType {
            minimum: u64::from(shape.plan.initial),
            maximum: shape.plan.maximum.map(u64::from),
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        sections.push((section_rank(5), OutSection::Memory(memories)));
    }
    exports.export(MEMORY_EXPORT, ExportKind::Memory, 0);
    sections.push((section_rank(7), OutSection::Export(exports)));
    sections.sort_by_key(|(rank, _)| *rank);
    let mut out = wasm_encoder::Module::new();
    for (_, section) in &sections {
        match section {
            OutSection::Raw(s) => out.section(s),
            OutSection::Import(s) => out.section(s),
            OutSection::Memory(s) => out.section(s),
            OutSection::Export(s) => out.section(s),
        };
    }
    Ok(out.finish())
}
