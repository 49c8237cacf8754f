//! The small traits the core needs from its environment.
//!
//! Each has a browser implementation in `browser/` and an in-memory one for
//! native tests, following gloo's "trait + browser impl + memory impl" pattern.
