"""Runs on disk: the run store (store) and runs built on other runs (lineage)."""
