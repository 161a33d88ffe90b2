//! Device profiles: the declarative format, its loader and the value decoders.
