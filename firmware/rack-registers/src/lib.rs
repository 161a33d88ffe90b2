//! Modbus register map of the battery-rack controller.
