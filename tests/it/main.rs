//! Integration tests: one binary, a module per feature, through real sockets and the real CLI.

mod badinput;
mod orders;
mod recovery;
mod util;
