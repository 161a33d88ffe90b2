//! Modbus polling: request planning from a profile and the TCP/RTU poller.
