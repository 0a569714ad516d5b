//! Loading: the rewrite of a core module's bulk-memory instructions (`memory.copy`,
//! `memory.fill`, `memory.init`, `data.drop`) into calls of the checked imports of
//! [`BULK_MODULE`], which [`crate::bulk`] defines (why: see there).

use wasm_encoder::reencode::{self, Reencode};
use wasm_encoder::{EntityType, Function, Instruction};
use wasmparser::{DataKind, FunctionBody, Operator, Parser, Payload, TypeRef};

use crate::names::{BULK_IMPORTS as IMPORTS, BULK_MODULE};
use crate::segments::DataSegments;

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
    Ok((module.finish(), Some(DataSegments::new(scan.segments))))
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
}
