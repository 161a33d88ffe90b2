//! End-to-end test harness: starts the facility simulator, an edge agent and the server in one process.
