"""Clerk: session-token verification, Backend API look-ups, and the mapping of Clerk users onto ours."""
