//! Fire-logic trace format (CSV in, JSON lines out), no_std so the emulated controller can replay it.
