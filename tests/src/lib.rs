//! Shared helpers for vigil's end-to-end tests: where the real services are, and how to require them.
