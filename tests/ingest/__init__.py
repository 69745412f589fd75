"""Tests of the NATS and node-state intake (streams.ingest), its projections and its API."""
