//! `wasmach inspect`: what a module is, as a task.

use std::path::Path;
use std::process::ExitCode;

use wasmach::{MACH_IMPORTS, MEMORY_EXPORT, Runtime};
use wasmtime::ExternType;

/// Prints the module's memory, imports, exports and Mach calls; status 2 if it is refused.
pub fn inspect(path: &Path) -> ExitCode {
    let runtime = match Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wasmach: cannot start the runtime: {e:#}");
            return ExitCode::from(2);
        }
    };
    let module = match runtime.compile_file(path) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("wasmach: {e:#}");
            return ExitCode::from(2);
        }
    };
    println!("module: {}", path.display());
    let maximum = match module.maximum_pages() {
        Some(m) => format!("maximum {m} pages ({} KiB)", u64::from(m) * 64),
        None => "no maximum (a 4 GiB address space)".to_owned(),
    };
    println!(
        "memory: initial {} pages ({} KiB), {maximum}",
        module.initial_pages(),
        u64::from(module.initial_pages()) * 64
    );
    let wasm = module.module();
    println!("imports:");
    let mut calls = Vec::new();
    for import in wasm.imports() {
        println!(
            "  {}.{}: {}",
            import.module(),
            import.name(),
            describe(&import.ty())
        );
        if import.module() == "mach" {
            calls.push(import.name().to_owned());
        }
    }
    println!("exports:");
    for export in wasm.exports().filter(|e| e.name() != MEMORY_EXPORT) {
        println!("  {}: {}", export.name(), describe(&export.ty()));
    }
    calls.sort_by_key(|c| MACH_IMPORTS.iter().position(|(n, _)| n == c));
    if calls.is_empty() {
        println!("mach calls: none");
    } else {
        println!("mach calls: {}", calls.join(", "));
    }
    ExitCode::SUCCESS
}

fn describe(ty: &ExternType) -> String {
    match ty {
        ExternType::Func(f) => {
            let list = |v: Vec<String>| v.join(", ");
            format!(
                "func ({}) -> ({})",
                list(f.params().map(|p| p.to_string()).collect()),
                list(f.results().map(|r| r.to_string()).collect())
            )
        }
        ExternType::Memory(m) => format!("memory {} pages", m.minimum()),
        ExternType::Table(_) => "table".to_owned(),
        ExternType::Global(_) => "global".to_owned(),
        ExternType::Tag(_) => "tag".to_owned(),
    }
}
