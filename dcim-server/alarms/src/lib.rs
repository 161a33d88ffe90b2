//! Alarm engine (ISA-18.2) and incident journal, as pure state machines.
