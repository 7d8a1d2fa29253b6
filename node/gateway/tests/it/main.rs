//! The gateway over a real loopback socket, against a fake in-memory backend.

mod errors;
mod limits;
mod query;
mod submit;
mod support;
