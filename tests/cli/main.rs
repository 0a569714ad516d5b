//! The `wasmach` command's tests: the `wasmach-cli` package's test target, so that cargo
//! builds the binary first and hands its path over (`CARGO_BIN_EXE_wasmach`, which only the
//! tests of the package that owns a binary get). The library's tests are `tests/all`.

use std::path::Path;
use std::process::{Command, Output};

#[path = "../all/oracle.rs"]
mod oracle;

mod bench;
mod commands;
mod guests;

/// The `wasmach` binary cargo built for these tests.
const WASMACH: &str = env!("CARGO_BIN_EXE_wasmach");

/// Runs the `wasmach` binary with `args` from the repository root.
fn wasmach(args: &[&str]) -> Output {
    Command::new(WASMACH)
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run wasmach")
}

/// The repository root (the package is `runtime/cli`).
fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("runtime/cli has two parents")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
