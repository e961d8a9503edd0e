"""AWS Step Functions (ASL): collect state machines from both trees, diff them, replay executions."""
