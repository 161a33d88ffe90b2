//! Staged battery-rack fire logic: a pure, no_std, allocation-free state machine.
