//! DC-09 transmitter: paths, retries, supervision and a persistent outbox.
