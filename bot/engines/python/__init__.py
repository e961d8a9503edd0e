"""What the Python-SDK engines (Temporal, Cadence) share: parsing, the walk, the diff, replay, plans."""
