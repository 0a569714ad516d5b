//! Paths to the guest programs of `guests/`, built for `wasm32-unknown-unknown` by this
//! crate's build script (in the manner of wasmtime's `test-programs` artifacts): the core
//! modules `PRODUCER`, `CONSUMER`, `SNAPSHOTTER`, `GUARD`, the core module `COMPONENT_CORE`
//! that wit-bindgen produced for the `program` world, and `COMPONENT`, that module made a
//! component by the `wit-component` crate; and the C guests of `guests/c` (`C_PRODUCER`,
//! `C_CONSUMER`, `C_ERRORS`, `C_EXAMPLE`), built with clang and lld.
//!
//! Building needs the wasm32 target and the C toolchain: `guests/setup.sh` installs both.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
