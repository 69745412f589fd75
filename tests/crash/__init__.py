"""Crash tests: a real `ccstream serve` process killed with SIGKILL under load."""
