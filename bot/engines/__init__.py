"""Workflow engines: each folder has the same files (extract, diff, plan, ...)."""
