"""collect: the only stage that touches the scanned tree. Everything it returns is a value."""
