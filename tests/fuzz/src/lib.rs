//! The parsers under fuzzing, shared by every target (see `parsers.rs`).

#[path = "../parsers.rs"]
pub mod parsers;
