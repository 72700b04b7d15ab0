"""graph: the ownership graph (networkx), built once from a Snapshot, then only read."""
