"""Cluster simulator: drives ccstream through its public interfaces as a real site's adapters and node agents do."""
