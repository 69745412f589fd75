"""Tests of the archive package: backends, meta.json <-> events, imports."""
