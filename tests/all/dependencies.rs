//! The library is what an embedder compiles: its normal dependency tree holds no crate of
//! the `wasmach` command (`runtime/cli`, the `wasmach-cli` package). Asked of cargo itself
//! (`cargo tree`, offline: the packages are already there when the tests build), so that a
//! CLI crate pulled in through another dependency counts too.

use std::process::Command;

/// The crates only the command may depend on.
fn is_cli_crate(name: &str) -> bool {
    name == "clap" || name.starts_with("clap_") || name == "tracing-subscriber"
}

/// The names of every package in `package`'s normal dependency tree (for this host).
fn normal_dependencies(package: &str) -> Vec<String> {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "-e", "normal", "--prefix", "none"])
        .args(["--format", "{p}", "-p", package])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split(' ').next())
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_library_depends_on_no_cli_crate() {
    let names = normal_dependencies("wasmach");
    assert_eq!(names.first().map(String::as_str), Some("wasmach"));
    assert!(names.iter().any(|n| n == "wasmtime"), "{names:?}");
    let cli: Vec<&String> = names.iter().filter(|n| is_cli_crate(n)).collect();
    assert!(
        cli.is_empty(),
        "the library `wasmach` depends on {cli:?}: CLI crates belong to runtime/cli"
    );
}

#[test]
fn the_check_sees_the_cli_crates_where_they_are() {
    // The command's tree has them: the test above looks where they would show.
    let names = normal_dependencies("wasmach-cli");
    assert!(names.iter().any(|n| n == "clap"), "{names:?}");
    assert!(names.iter().any(|n| n == "tracing-subscriber"), "{names:?}");
}
