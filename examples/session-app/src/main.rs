//! Run with: `cargo run -p session-app` (work in progress).

fn main() {}
