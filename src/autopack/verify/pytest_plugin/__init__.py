"""The pytest plugin the baseline run loads to record per-test coverage (see autopack_impact)."""
