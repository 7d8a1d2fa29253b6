//! The gateway over a real loopback socket, against a fake in-memory backend.

mod errors;
mod limits;
mod query;
mod state;
mod streams;
mod submit;
mod support;
mod tls;
