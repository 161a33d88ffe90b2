//! Integration tests of `dcim-profiles`, one test binary with a module per area (each module's doc says
//! what it guards against). One area: `cargo test -p dcim-profiles --test it -- MODULE::`.

mod loader;
mod roles_doc;
