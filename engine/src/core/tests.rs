//! Unit tests of the core handlers.
