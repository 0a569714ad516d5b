//! `wasmach inspect`: what a module or component is, as a task.

use std::path::Path;
use std::process::ExitCode;

use wasmach::{BULK_MODULE, MACH_IMPORTS, MEMORY_EXPORT, Runtime, TaskModule};
use wasmtime::component::types::{ComponentItem, Type};
use wasmtime::{Engine, ExternType};

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
    let memory = memory_line(&module);
    let Some(wasm) = module.module() else {
        return inspect_component(&runtime, path, &module, &memory);
    };
    println!("module: {}", path.display());
    println!("{memory}");
    println!("imports:");
    let mut calls = Vec::new();
    // The checked bulk-memory imports are the runtime's own (see `wasmach::BULK_MODULE`).
    for import in wasm.imports().filter(|i| i.module() != BULK_MODULE) {
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
    print_calls(calls);
    ExitCode::SUCCESS
}

/// The memory line of either kind of task image.
fn memory_line(module: &TaskModule) -> String {
    let maximum = match module.maximum_pages() {
        Some(m) => format!("maximum {m} pages ({} KiB)", u64::from(m) * 64),
        None => "no maximum (a 4 GiB address space)".to_owned(),
    };
    format!(
        "memory: initial {} pages ({} KiB), {maximum}",
        module.initial_pages(),
        u64::from(module.initial_pages()) * 64
    )
}

/// Prints a component: its memory, its imported interfaces with their functions, its
/// exports, and the Mach calls it imports.
fn inspect_component(
    runtime: &Runtime,
    path: &Path,
    module: &TaskModule,
    memory: &str,
) -> ExitCode {
    let Some(component) = module.component() else {
        return ExitCode::from(2);
    };
    let engine = runtime.engine();
    let ty = component.component_type();
    println!("component: {}", path.display());
    println!("{memory}");
    println!("imports:");
    let mut calls = Vec::new();
    for (name, item) in ty.imports(engine) {
        println!("  {name}: {}", describe_item(engine, &item.ty, 2));
        if let ComponentItem::ComponentInstance(instance) = &item.ty
            && name.starts_with("wasmach:mach/vm")
        {
            calls.extend(
                instance
                    .exports(engine)
                    .filter(|(_, e)| matches!(e.ty, ComponentItem::ComponentFunc(_)))
                    .map(|(f, _)| f.replace('-', "_")),
            );
        }
    }
    println!("exports:");
    for (name, item) in ty.exports(engine) {
        println!("  {name}: {}", describe_item(engine, &item.ty, 2));
    }
    print_calls(calls);
    ExitCode::SUCCESS
}

/// A component item; an instance lists its items on the following lines.
fn describe_item(engine: &Engine, item: &ComponentItem, indent: usize) -> String {
    match item {
        ComponentItem::ComponentFunc(f) => {
            let params: Vec<String> = f
                .params()
                .map(|(n, t)| format!("{n}: {}", type_name(&t)))
                .collect();
            let results: Vec<String> = f.results().map(|t| type_name(&t)).collect();
            match results.as_slice() {
                [] => format!("func({})", params.join(", ")),
                _ => format!("func({}) -> {}", params.join(", "), results.join(", ")),
            }
        }
        ComponentItem::ComponentInstance(instance) => {
            let pad = " ".repeat(indent + 2);
            let mut out = "instance".to_owned();
            for (name, item) in instance.exports(engine) {
                out.push_str(&format!(
                    "\n{pad}{name}: {}",
                    describe_item(engine, &item.ty, indent + 2)
                ));
            }
            out
        }
        ComponentItem::Type(t) => format!("type {}", type_name(t)),
        ComponentItem::CoreFunc(_) => "core func".to_owned(),
        ComponentItem::Module(_) => "core module".to_owned(),
        ComponentItem::Component(_) => "component".to_owned(),
        ComponentItem::Resource(_) => "resource".to_owned(),
    }
}

/// A component value type, briefly (compound types by their kind).
fn type_name(ty: &Type) -> String {
    match ty {
        Type::List(l) => format!("list<{}>", type_name(&l.ty())),
        Type::Result(r) => {
            let side = |t: Option<Type>| t.map_or("_".to_owned(), |t| type_name(&t));
            format!("result<{}, {}>", side(r.ok()), side(r.err()))
        }
        Type::Record(_) => "record".to_owned(),
        Type::Enum(_) => "enum".to_owned(),
        Type::Flags(_) => "flags".to_owned(),
        Type::Variant(_) => "variant".to_owned(),
        Type::Tuple(_) => "tuple".to_owned(),
        Type::Option(_) => "option".to_owned(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// The `mach calls:` line, in the order of [`MACH_IMPORTS`].
fn print_calls(mut calls: Vec<String>) {
    calls.sort_by_key(|c| MACH_IMPORTS.iter().position(|(n, _)| n == c));
    if calls.is_empty() {
        println!("mach calls: none");
    } else {
        println!("mach calls: {}", calls.join(", "));
    }
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
