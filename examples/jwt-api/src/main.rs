//! Run with: `cargo run -p jwt-api` (work in progress).

fn main() {}
