"""Imports of existing cc-backend data: whole archives and single jobs, as events on the log."""
