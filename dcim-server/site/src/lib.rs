//! Site model and the redundancy engine.
