//! Helpers shared by the end-to-end tests: a child process that drives an engine for crash tests.
