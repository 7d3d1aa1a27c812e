//! Integration tests and examples of the mod-alloc workspace live in `tests/` and `examples/`.
