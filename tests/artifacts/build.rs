//! Builds the guest workspace `guests/` for `wasm32-unknown-unknown` with the cargo that
//! runs this build, componentises the `component` guest with `wit-component`, and writes
//! the paths of the results as constants into `$OUT_DIR/artifacts.rs`.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const TARGET: &str = "wasm32-unknown-unknown";
/// The core-module guests: (constant, crate).
const PROGRAMS: [(&str, &str); 5] = [
    ("PRODUCER", "producer"),
    ("CONSUMER", "consumer"),
    ("SNAPSHOTTER", "snapshotter"),
    ("GUARD", "guard"),
    ("COMPONENT_CORE", "component"),
];

fn main() -> Result<()> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest_dir
        .parent()
        .and_then(Path::parent)
        .context("tests/artifacts has no grandparent")?;
    let guests = root.join("guests");
    for input in ["Cargo.toml", "Cargo.lock", "sdk", "protocol", "programs"] {
        println!("cargo:rerun-if-changed={}", guests.join(input).display());
    }
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    println!("cargo:rerun-if-changed={}", guests.join("c").display());

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let target_dir = out_dir.join("guests");
    check_target_installed()?;
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args(["build", "--release", "--locked", "--target", TARGET])
        .arg("--manifest-path")
        .arg(guests.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // The outer build's settings are for the host, not for the guests.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .status()
        .context("cannot run cargo to build guests/")?;
    if !status.success() {
        bail!("building guests/ for {TARGET} failed ({status})");
    }

    let release = target_dir.join(TARGET).join("release");
    let mut consts = String::new();
    for (name, krate) in PROGRAMS {
        let doc = format!("`guests/programs/{krate}`, a core module.");
        path_const(
            &mut consts,
            name,
            &doc,
            &release.join(format!("{krate}.wasm")),
        )?;
    }

    let core = std::fs::read(release.join("component.wasm"))?;
    let component = wit_component::ComponentEncoder::default()
        .module(&core)
        .context("the component guest carries no usable component-type section")?
        .validate(true)
        .encode()
        .context("wit-component cannot make the component guest a component")?;
    // Its own directory, so that the file stem (the CLI's default task name) is `component`.
    let dir = out_dir.join("component");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("component.wasm");
    std::fs::write(&path, component)?;
    path_const(
        &mut consts,
        "COMPONENT",
        "`guests/programs/component`, made a component (the `program` world of wit/mach.wit).",
        &path,
    )?;
    build_c_guests(&guests, &out_dir, &mut consts)?;
    std::fs::write(out_dir.join("artifacts.rs"), consts)?;
    Ok(())
}

/// The C guests of `guests/c`: (constant, program).
const C_PROGRAMS: [(&str, &str); 4] = [
    ("C_PRODUCER", "producer"),
    ("C_CONSUMER", "consumer"),
    ("C_ERRORS", "errors"),
    ("C_EXAMPLE", "example"),
];

/// Builds the C guests with `guests/c/build.sh` (clang and lld) into `$OUT_DIR/c`; fails
/// with the script's message, which names the Debian packages, when they are missing.
fn build_c_guests(guests: &Path, out_dir: &Path, consts: &mut String) -> Result<()> {
    let dir = out_dir.join("c");
    let output = Command::new("sh")
        .arg(guests.join("c/build.sh"))
        .env("WASMACH_C_OUT", &dir)
        .output()
        .context("cannot run sh guests/c/build.sh")?;
    if !output.status.success() {
        bail!(
            "building the C guests failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    for (name, program) in C_PROGRAMS {
        let doc = format!("`guests/c/{program}.c`, a core module.");
        path_const(consts, name, &doc, &dir.join(format!("{program}.wasm")))?;
    }
    Ok(())
}

/// Writes `pub const NAME: &str = "path";` with its doc line, for a file that was built.
fn path_const(consts: &mut String, name: &str, doc: &str, path: &Path) -> Result<()> {
    anyhow::ensure!(path.exists(), "{} was not built", path.display());
    writeln!(consts, "/// {doc}")?;
    writeln!(
        consts,
        "pub const {name}: &str = {:?};",
        path.display().to_string()
    )?;
    Ok(())
}

/// Fails with the command to run when the standard library for wasm32 is missing.
fn check_target_installed() -> Result<()> {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let output = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .context("cannot run rustc")?;
    let sysroot = PathBuf::from(String::from_utf8(output.stdout)?.trim());
    if !sysroot.join("lib/rustlib").join(TARGET).exists() {
        bail!(
            "the {TARGET} target is not installed; the guest programs need it: \
             run `rustup target add {TARGET}`"
        );
    }
    Ok(())
}
