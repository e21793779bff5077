"""MongoDB access through PyMongo's async API: one module per collection."""
