"""Worker jobs, one module per domain. Jobs take ids as keyword arguments, never documents."""
