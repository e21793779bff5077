"""Domain services: the rules of users and sessions, free of HTTP."""
