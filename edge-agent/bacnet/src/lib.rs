//! BACnet/IP: codec for the services the agent needs, a client and a small device server.
