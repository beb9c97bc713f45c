//! Integration tests: one binary, a module per feature, through real sockets and the real CLI.
