"""The Piston code-execution engine (engineer-man/piston): its HTTP API and its runtime list."""
