//! wasmach's integration tests: one binary, a module per area.

mod common;

mod cli;
mod components;
mod guest_calls;
mod guests;
mod host_api;
mod hostile;
mod isolation;
mod map_model;
mod modules;
mod ports;
mod protection;
mod readme;
mod stress;
mod threads;
