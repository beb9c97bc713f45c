//! HOT — embedded simulated venue (in progress).
