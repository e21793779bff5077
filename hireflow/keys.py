"""Every Redis key, channel, queue and job-id prefix, in one place."""

from __future__ import annotations

PREFIX = "hireflow:"

# Read-cache versions (see hireflow/cache.py): bumped after every write to the collection.
USERS_VERSION = PREFIX + "ver:users"
SESSIONS_VERSION = PREFIX + "ver:sessions"
