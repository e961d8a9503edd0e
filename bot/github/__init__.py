"""The GitHub entry point: `inflight-guard action` reads the Actions environment, runs the
pipeline, and publishes one sticky comment and a fixed-name commit status."""
