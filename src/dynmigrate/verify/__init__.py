"""dynmigrate verify: what a migrated host looks like now (a live host, read through /proc and
the confined reader), with the repair of an account a package upgrade recreated."""
