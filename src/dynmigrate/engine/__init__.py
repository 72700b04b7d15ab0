"""engine: the rule catalogue (rules/), its loader and runner, and verdicts."""
