//! End-to-end tests of the real binaries live in `tests/e2e`. They find the binaries next to the
//! test executable (`target/<profile>/`); `cargo test --workspace` builds them first, because the
//! crates that define them have integration tests of their own.
