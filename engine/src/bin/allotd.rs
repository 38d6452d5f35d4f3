//! `allotd`, the allot server.

fn main() {}
