//! Run with: `cargo run -p hybrid-app` (work in progress).

fn main() {}
