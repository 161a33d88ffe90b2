//! Bounded, checksummed on-disk spool for store-and-forward.
