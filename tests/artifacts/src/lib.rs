//! Paths to the guest programs of `guests/`, built for `wasm32-unknown-unknown` by this
//! crate's build script (in the manner of wasmtime's `test-programs` artifacts): the core
//! modules `PRODUCER`, `CONSUMER`, `SNAPSHOTTER`, `GUARD`, the core module `COMPONENT_CORE`
//! that wit-bindgen produced for the `program` world, and `COMPONENT`, that module made a
//! component by the `wit-component` crate.
//!
//! Building needs the wasm32 target: `rustup target add wasm32-unknown-unknown`.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
