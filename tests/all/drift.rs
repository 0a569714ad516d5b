//! The codes and protections other files repeat are the runtime's (issue 11, "one place per
//! rule"): `wasmach::KernReturn::ALL` and `wasmach::VmProt` are the list; the guest SDK
//! (`guests/sdk/src/types.rs`, `guests/sdk/src/sys.rs`), the WIT package (`wit/mach.wit`:
//! `kern-error`, `vm-prot`), the component guest's `kern-error` → code table and the codes
//! table of `docs/spec.md` §2 are read as text here and compared with it, names, values and
//! order, so that none of them can drift. A difference fails with every mismatch listed.
//!
//! The parsing is plain text, tolerant of formatting (line breaks, comments, attributes,
//! `_` in numbers), and strict about content: a code missing, extra, renamed, renumbered
//! or reordered is reported.

use std::path::{Path, PathBuf};

use wasmach::{KERN_SUCCESS, KernReturn, VmProt};

/// The runtime's protection constants, by name. Checked against `runtime/src/kern.rs` below,
/// so that a constant added there cannot be missed here.
const PROTECTIONS: [(&str, VmProt); 6] = [
    ("NONE", VmProt::NONE),
    ("READ", VmProt::READ),
    ("WRITE", VmProt::WRITE),
    ("EXECUTE", VmProt::EXECUTE),
    ("DEFAULT", VmProt::DEFAULT),
    ("ALL", VmProt::ALL),
];

/// The single protection bits, in bit order (what WIT `flags` number from bit 0).
const BITS: [(&str, VmProt); 3] = [
    ("READ", VmProt::READ),
    ("WRITE", VmProt::WRITE),
    ("EXECUTE", VmProt::EXECUTE),
];

/// The repository's root: the nearest ancestor of the crate holding `wit/mach.wit`.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|dir| dir.join("wit/mach.wit").is_file())
        .expect("wit/mach.wit above the crate")
        .to_path_buf()
}

fn read(path: &str) -> String {
    let full = root().join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("reading {}: {e}", full.display()))
}

/// A Rust or WIT integer literal: decimal or `0x` hex, `_` allowed.
fn int(text: &str) -> Option<u64> {
    let t: String = text.trim().chars().filter(|&c| c != '_').collect();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    }
}

/// The text between the `{` following the first occurrence of `head` and its matching `}`
/// (or `[`/`]` when `open` is `[`).
fn block<'a>(text: &'a str, head: &str, open: char) -> &'a str {
    let close = if open == '[' { ']' } else { '}' };
    let at = text
        .find(head)
        .unwrap_or_else(|| panic!("`{head}` not found"));
    let start = at + text[at..].find(open).expect("opening bracket") + 1;
    let mut depth = 1;
    for (i, c) in text[start..].char_indices() {
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return &text[start..start + i];
            }
        }
    }
    panic!("`{head}`: no closing {close}")
}

/// An item of a Rust enum body or a WIT enum/flags body: its doc comment (the `///` lines
/// before it, joined) and its text with comments and attributes removed.
struct Item {
    doc: String,
    text: String,
}

/// Splits a body into its comma-separated items, keeping each item's doc comment.
fn items(body: &str) -> Vec<Item> {
    let mut out = Vec::new();
    let (mut doc, mut text) = (String::new(), String::new());
    for line in body.lines() {
        let line = line.trim();
        if let Some(d) = line.strip_prefix("///") {
            doc.push_str(d.trim());
            doc.push(' ');
            continue;
        }
        if line.starts_with("//") || line.starts_with('#') {
            continue;
        }
        let code = line.split("//").next().unwrap_or("");
        for (i, part) in code.split(',').enumerate() {
            if i > 0 && !text.trim().is_empty() {
                out.push(Item {
                    doc: std::mem::take(&mut doc),
                    text: std::mem::take(&mut text),
                });
            }
            text.push_str(part);
            text.push(' ');
        }
    }
    if !text.trim().is_empty() {
        out.push(Item { doc, text });
    }
    for item in &mut out {
        item.text = item.text.split_whitespace().collect::<Vec<_>>().join(" ");
    }
    out
}

/// The `NAME (value)` a doc comment states, such as `KERN_INVALID_ADDRESS (1)`.
fn doc_code(doc: &str) -> Option<(String, u64)> {
    let start = ["KERN_", "MACH_"]
        .iter()
        .filter_map(|p| doc.find(p))
        .min()?;
    let rest = &doc[start..];
    let name_end = rest.find(|c: char| !(c.is_ascii_uppercase() || c == '_'))?;
    let name = rest[..name_end].trim_matches('`').to_string();
    let after = rest[name_end..].trim_start_matches('`').trim_start();
    let value = after.strip_prefix('(')?.split(')').next()?;
    Some((name, int(value)?))
}

/// `InvalidAddress` → `invalid-address`.
fn kebab(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The runtime's list: (variant, Mach name, value), in `KernReturn::ALL` order.
fn runtime_codes() -> Vec<(String, String, u64)> {
    KernReturn::ALL
        .iter()
        .map(|k| (format!("{k:?}"), k.name().to_string(), u64::from(k.code())))
        .collect()
}

/// A code as Mach's headers write it: decimal, or hex for the message-level ones.
fn show(value: u64) -> String {
    if value >= 0x1000_0000 {
        format!("{value:#x}")
    } else {
        value.to_string()
    }
}

/// Compares one file's list of codes with the runtime's, in order.
fn compare(errors: &mut Vec<String>, what: &str, found: &[(String, String, u64)]) {
    let want = runtime_codes();
    if found.len() != want.len() {
        errors.push(format!(
            "{what}: {} codes, the runtime has {} ({:?} vs {:?})",
            found.len(),
            want.len(),
            found.iter().map(|f| &f.1).collect::<Vec<_>>(),
            want.iter().map(|w| &w.1).collect::<Vec<_>>(),
        ));
    }
    for (i, (f, w)) in found.iter().zip(&want).enumerate() {
        if f != w {
            errors.push(format!(
                "{what}: code #{i} is {} = {} ({}), the runtime's is {} = {} ({})",
                f.0,
                show(f.2),
                f.1,
                w.0,
                show(w.2),
                w.1
            ));
        }
    }
}

fn report(errors: Vec<String>) {
    assert!(
        errors.is_empty(),
        "the repeated codes drifted from wasmach::KernReturn / wasmach::VmProt:\n  {}",
        errors.join("\n  ")
    );
}

/// `KernReturn::X => <rhs>` arms of a `match` body (`prefix` is `KernReturn::` or
/// `KernError::`), in order.
fn arms(body: &str, prefix: &str) -> Vec<(String, String)> {
    items(body)
        .into_iter()
        .filter_map(|item| {
            let (lhs, rhs) = item.text.split_once("=>")?;
            let variant = lhs.trim().strip_prefix(prefix)?;
            Some((variant.trim().to_string(), rhs.trim().to_string()))
        })
        .collect()
}

/// `pub const NAME: VmProt = VmProt(bits);` constants of a Rust file.
fn prot_consts(source: &str) -> Vec<(String, u64)> {
    let flat: String = source.split_whitespace().collect::<Vec<_>>().join(" ");
    flat.split("pub const ")
        .skip(1)
        .filter_map(|item| {
            let (name, rest) = item.split_once(": VmProt = VmProt(")?;
            let bits = int(rest.split(')').next()?)?;
            Some((name.trim().to_string(), bits))
        })
        .collect()
}

fn runtime_protections() -> Vec<(String, u64)> {
    PROTECTIONS
        .iter()
        .map(|(n, p)| (n.to_string(), u64::from(p.bits())))
        .collect()
}

/// The runtime's own list of protections in this test is complete and right.
#[test]
fn drift_runtime_protections_are_all_listed() {
    let mut found = prot_consts(&read("runtime/src/kern.rs"));
    let mut want = runtime_protections();
    found.sort();
    want.sort();
    assert_eq!(
        found, want,
        "runtime/src/kern.rs's VmProt constants vs this test's list"
    );
    assert_eq!(KERN_SUCCESS, 0);
}

/// `wasmach-guest` (guests/sdk): `KernReturn`'s variants, values, doc comments, `ALL` and
/// `name()`; `VmProt`'s constants; `sys::KERN_SUCCESS` and `sys::KERN_FAILURE`.
#[test]
fn drift_guest_sdk_codes_and_protections_are_the_runtimes() {
    let types = read("guests/sdk/src/types.rs");
    let mut errors = Vec::new();

    let names: Vec<(String, String)> = arms(
        block(block(&types, "fn name(self)", '{'), "match self", '{'),
        "KernReturn::",
    )
    .into_iter()
    .map(|(v, rhs)| (v, rhs.trim_matches('"').to_string()))
    .collect();
    let mut variants = Vec::new();
    for item in items(block(&types, "pub enum KernReturn", '{')) {
        let Some((variant, value)) = item.text.split_once('=') else {
            errors.push(format!(
                "SDK KernReturn: `{}` has no explicit value",
                item.text
            ));
            continue;
        };
        let variant = variant.trim().to_string();
        let value = int(value).unwrap_or(u64::MAX);
        let name = names
            .iter()
            .find(|(v, _)| *v == variant)
            .map_or_else(|| format!("<{variant} not in name()>"), |(_, n)| n.clone());
        if doc_code(&item.doc) != Some((name.clone(), value)) {
            errors.push(format!(
                "SDK KernReturn::{variant}: its doc comment says {:?}, the variant is {name} ({value})",
                doc_code(&item.doc)
            ));
        }
        variants.push((variant, name, value));
    }
    compare(
        &mut errors,
        "guests/sdk KernReturn (declaration order)",
        &variants,
    );

    let all_at = types
        .find("pub const ALL: [KernReturn")
        .expect("SDK KernReturn::ALL");
    let all: Vec<(String, String, u64)> = block(&types[all_at..], "= [", '[')
        .split(',')
        .filter_map(|v| v.trim().strip_prefix("KernReturn::"))
        .map(|v| {
            let v = v.trim().to_string();
            variants.iter().find(|(n, ..)| *n == v).cloned().unwrap_or((
                v,
                "<not a variant>".into(),
                u64::MAX,
            ))
        })
        .collect();
    compare(&mut errors, "guests/sdk KernReturn::ALL", &all);

    let mut names_found = names.clone();
    let mut names_want: Vec<(String, String)> = runtime_codes()
        .into_iter()
        .map(|(v, n, _)| (v, n))
        .collect();
    names_found.sort();
    names_want.sort();
    if names_found != names_want {
        errors.push(format!(
            "guests/sdk KernReturn::name(): {names_found:?}, the runtime's: {names_want:?}"
        ));
    }

    let mut prots = prot_consts(&types);
    let mut want = runtime_protections();
    prots.sort();
    want.sort();
    if prots != want {
        errors.push(format!(
            "guests/sdk VmProt constants: {prots:?}, the runtime's: {want:?}"
        ));
    }

    let sys = read("guests/sdk/src/sys.rs");
    for (name, value) in [
        ("KERN_SUCCESS", u64::from(KERN_SUCCESS)),
        ("KERN_FAILURE", u64::from(KernReturn::Failure.code())),
    ] {
        let found = sys
            .split(&format!("pub const {name}: u32 ="))
            .nth(1)
            .and_then(|rest| int(rest.split(';').next()?));
        if found != Some(value) {
            errors.push(format!(
                "guests/sdk sys::{name} is {found:?}, the runtime's {value}"
            ));
        }
    }
    report(errors);
}

/// `wit/mach.wit`: the cases of `kern-error` in order (a WIT enum's cases are numbered by
/// position; the runtime maps them by name), each with its `NAME (value)` doc comment, and
/// the `vm-prot` flags in bit order.
#[test]
fn drift_wit_codes_and_protections_are_the_runtimes() {
    let wit = read("wit/mach.wit");
    let mut errors = Vec::new();
    let want = runtime_codes();
    let cases = items(block(&wit, "enum kern-error", '{'));
    let mut found = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let (name, value) = doc_code(&case.doc).unwrap_or(("<no NAME (value) doc>".into(), 0));
        let variant = want
            .iter()
            .find(|(v, ..)| kebab(v) == case.text)
            .map_or_else(
                || format!("<{} matches no KernReturn variant>", case.text),
                |w| w.0.clone(),
            );
        if i < want.len() && case.text != kebab(&want[i].0) {
            errors.push(format!(
                "wit kern-error case #{i} is `{}`, the runtime's code #{i} is `{}`",
                case.text,
                kebab(&want[i].0)
            ));
        }
        found.push((variant, name, value));
    }
    compare(
        &mut errors,
        "wit/mach.wit kern-error (doc comments)",
        &found,
    );

    let flags: Vec<String> = items(block(&wit, "flags vm-prot", '{'))
        .into_iter()
        .map(|f| f.text)
        .collect();
    let want_flags: Vec<String> = BITS.iter().map(|(n, _)| n.to_lowercase()).collect();
    if flags != want_flags {
        errors.push(format!(
            "wit vm-prot flags: {flags:?}, the runtime's bits: {want_flags:?}"
        ));
    }
    for (i, (name, prot)) in BITS.iter().enumerate() {
        if prot.bits() != 1 << i {
            errors.push(format!(
                "VmProt::{name} is {}, but WIT flag #{i} is bit {}",
                prot.bits(),
                1 << i
            ));
        }
    }
    let combined: u32 = BITS.iter().map(|(_, p)| p.bits()).sum();
    if combined != VmProt::ALL.bits() {
        errors.push(format!(
            "the WIT flags cover bits {combined:#b}, VmProt::ALL is {:#b}",
            VmProt::ALL.bits()
        ));
    }
    report(errors);
}

/// The component guest (`guests/programs/component`) turns a `kern-error` into its code
/// with a table of its own.
#[test]
fn drift_component_guest_codes_are_the_runtimes() {
    let source = read("guests/programs/component/src/lib.rs");
    let body = block(&source, "fn code(e: KernError)", '{');
    let body = block(body, "match e", '{');
    let found: Vec<(String, String, u64)> = arms(body, "KernError::")
        .into_iter()
        .map(|(variant, value)| {
            let name = runtime_codes()
                .into_iter()
                .find(|(v, ..)| *v == variant)
                .map_or_else(|| "<no such runtime code>".to_string(), |(_, n, _)| n);
            (variant, name, int(&value).unwrap_or(u64::MAX))
        })
        .collect();
    let mut sorted = found.clone();
    sorted.sort_by_key(|f| f.2);
    let mut errors = Vec::new();
    compare(&mut errors, "guests/programs/component code()", &sorted);
    report(errors);
}

/// `docs/spec.md` §2: the codes table (with `KERN_SUCCESS`) and the protection values.
#[test]
fn drift_spec_codes_table_is_the_runtimes() {
    let spec = read("docs/spec.md");
    let section = spec
        .split("## 2. Codes")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("docs/spec.md has a section `## 2. Codes`");
    let mut rows = Vec::new();
    for line in section.lines().filter(|l| l.trim_start().starts_with('|')) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(value), Some(name)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        let (Some(value), name) = (int(value.trim_matches('`')), name.trim_matches('`')) else {
            continue;
        };
        rows.push((name.to_string(), value));
    }
    let mut errors = Vec::new();
    let mut want: Vec<(String, u64)> = vec![("KERN_SUCCESS".into(), u64::from(KERN_SUCCESS))];
    want.extend(runtime_codes().into_iter().map(|(_, n, v)| (n, v)));
    if rows != want {
        errors.push(format!(
            "docs/spec.md §2 table: {rows:?}\n  the runtime's: {want:?}"
        ));
    }
    for (name, prot) in PROTECTIONS {
        let bits = prot.bits();
        if !section.contains(&format!("`{name} = {bits}`"))
            && !section.contains(&format!("`VM_PROT_{name} = {bits}`"))
        {
            errors.push(format!("docs/spec.md §2 does not say `{name} = {bits}`"));
        }
    }
    report(errors);
}

/// `#define NAME value` lines of a C header whose name starts with one of `prefixes`, in
/// order, with the value's first token (a literal, or a cast literal like `((vm_prot_t)0x01)`).
fn c_defines(header: &str, prefixes: &[&str]) -> Vec<(String, String)> {
    header
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("#define ")?;
            let (name, value) = rest.split_once(char::is_whitespace)?;
            prefixes
                .iter()
                .any(|p| name.starts_with(p))
                .then(|| (name.to_owned(), value.trim().to_owned()))
        })
        .collect()
}

#[test]
fn drift_c_header_codes_and_protections_are_the_runtimes() {
    let mut errors = Vec::new();
    let codes = read("guests/c/include/mach/kern_return.h");
    let found: Vec<(String, String, u64)> = c_defines(&codes, &["KERN_", "MACH_SEND_"])
        .into_iter()
        .filter(|(name, _)| name != "KERN_SUCCESS")
        .map(|(name, value)| {
            let literal = value.split_whitespace().next().unwrap_or("");
            let code = int(literal).unwrap_or_else(|| panic!("{name}: not a literal: {value}"));
            let variant = runtime_codes()
                .into_iter()
                .find(|(_, n, _)| *n == name)
                .map_or_else(|| "?".to_owned(), |(v, _, _)| v);
            (variant, name, code)
        })
        .collect();
    compare(&mut errors, "guests/c/include/mach/kern_return.h", &found);
    let prots = read("guests/c/include/mach/vm_prot.h");
    let bits: Vec<(String, u64)> = c_defines(&prots, &["VM_PROT_"])
        .into_iter()
        .filter_map(|(name, value)| {
            // ((vm_prot_t)0x01): the literal after the cast; the composite ones are checked
            // through their parts.
            let literal = value
                .trim_matches(|c| c == '(' || c == ')')
                .rsplit(')')
                .next()?;
            Some((
                name.trim_start_matches("VM_PROT_").to_owned(),
                int(literal)?,
            ))
        })
        .collect();
    for (name, value) in runtime_protections() {
        if ["DEFAULT", "ALL"].contains(&name.as_str()) {
            continue;
        }
        match bits.iter().find(|(n, _)| *n == name) {
            Some((_, v)) if *v == value => {}
            other => errors.push(format!(
                "guests/c/include/mach/vm_prot.h: VM_PROT_{name} is {other:?}, the runtime's is {value}"
            )),
        }
    }
    report(errors);
}
