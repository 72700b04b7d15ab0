"""cli: click commands, the two consoles and exit codes. The only place that knows about click."""
