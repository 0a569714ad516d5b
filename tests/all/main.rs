//! wasmach's integration tests: one binary, a module per area. (The `wasmach` command's
//! tests are `tests/cli`, a test target of the `wasmach-cli` package.)

mod common;
mod oracle;

mod components;
mod dependencies;
mod drift;
mod guest_calls;
mod guests;
mod host_api;
mod hostile;
mod isolation;
mod layers;
mod map_model;
mod modules;
mod ports;
mod protection;
mod readme;
mod spawn_pool;
mod stress;
mod threads;
mod virtual_copy;
