# Sourced by every script that reads the golden vectors: the one shell definition of where they
# are (the Rust one is `rewarder_testkit::golden::vectors`). They live in the repository, under
# testing/vectors/; REWARDER_VECTORS may point elsewhere (e.g. a newer reference copy to compare).
# shellcheck shell=bash
REWARDER_VECTORS="${REWARDER_VECTORS:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/testing/vectors}"
export REWARDER_VECTORS
