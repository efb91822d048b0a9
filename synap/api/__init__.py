"""Front ends: one module per protocol, all calling the same command layer."""
