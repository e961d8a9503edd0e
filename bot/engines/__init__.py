"""Workflow engines: each folder has the same files (extract, diff, plan, ...); python/ holds what the
Python-SDK engines (temporal/, cadence/) share, base.py the Engine protocol, registry.py the list."""
