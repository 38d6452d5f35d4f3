//! `allot`, the operator CLI.

fn main() {}
