#!/usr/bin/env bash
# The multi-site test on its own: three etcd members, PostgreSQL on two sites under Patroni,
# two dcim-server replicas, two edge agents, pysiaalarm and a webhook receiver on loopback; a
# link cut between the sites, then site A killed with SIGKILL (tests/e2e/tests/it/multisite.rs).
# Needs what tests/setup.sh installs. DCIM_MULTISITE_KEEP=1 keeps the directory with every
# process's log. Prints the RTO and the counts.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DCIM_TEST_VENV="${DCIM_TEST_VENV:-$HOME/.cache/dcim-test-venv}"
export DCIM_PYTHON="${DCIM_PYTHON:-$DCIM_TEST_VENV/bin/python}"
export DCIM_REQUIRE_PEERS="${DCIM_REQUIRE_PEERS:-1}"
timeout 420 cargo test -p dcim-e2e --test it -- multisite:: --ignored --test-threads=1 --nocapture "$@"
