"""Every Redis key, channel, queue and job-id prefix, in one place."""

from __future__ import annotations

PREFIX = "hireflow:"

# Read-cache versions (see hireflow/cache.py): bumped after every write to the collection.
USERS_VERSION = PREFIX + "ver:users"
SESSIONS_VERSION = PREFIX + "ver:sessions"

# Per-session lock held by the worker job that syncs a session with Stream, so that no session is
# ever provisioned or torn down by two workers at the same time.
SESSION_LOCK = PREFIX + "lock:session:"

# arq: the queue every worker reads, and the job ids that make a duplicate enqueue a no-op.
QUEUE = PREFIX + "queue"
SESSION_JOB = "session:{session_id}:{reason}"
STREAM_USER_JOB = "stream-user:{clerk_id}:{action}:{stamp}"

# Set after Stream answers 429: no worker calls Stream again before this key expires.
STREAM_RATE_LIMITED = PREFIX + "stream:rate-limited"

# Realtime (see hireflow/realtime/bus.py). Per topic: a hash {epoch, seq} and a stream holding the
# retained events (entry id = seq). One pub/sub channel carries every topic's events, one carries
# control messages (disconnect a user everywhere).
RT_META = PREFIX + "rt:meta:"
RT_LOG = PREFIX + "rt:log:"
RT_EVENTS = PREFIX + "rt:events"
RT_CONTROL = PREFIX + "rt:control"
# Per session: a hash {topic: ev} of the last change published to each of its topics, so that a late or
# repeated announcement of an older change is dropped (see SessionEvent.ev).
RT_GATE = PREFIX + "rt:gate:"

# Per-user quotas (hireflow/quotas.py): the `limits` library's moving windows live under this prefix,
# and each user's open WebSockets (a sorted set of connection ids scored by lease expiry).
QUOTAS = PREFIX + "quota"
WS_SEATS = PREFIX + "quota:ws:"

# Code runs (see hireflow/services/run_limits.py): per user and per session, a sorted set of the runs
# in flight (score: when the lease lapses, should nobody release it); per user, a sorted set of the
# runs started in the last minute (score: when). Queued runs wait for a worker in a list (run_consumer.py).
RUNS_IN_FLIGHT_USER = PREFIX + "runs:inflight:user:"
RUNS_IN_FLIGHT_SESSION = PREFIX + "runs:inflight:session:"
RUNS_RECENT_USER = PREFIX + "runs:recent:user:"
RUNS_QUEUE = PREFIX + "runs:queue"

# Live pad (see hireflow/pad/relay.py): one binary pub/sub channel carries every pad's stored updates,
# awareness and freeze notices between web instances.
PAD_RELAY = PREFIX + "pad:relay"
# Who has a pad open (see hireflow/pad/presence.py): a sorted set of leases, member "<session> <role>
# <instance>" scored by expiry (Redis time, ms), and a hash of how many instances hold each
# "<session> <role>" (plus "<session> v", the version of the session's state).
PAD_OPEN_LEASES = PREFIX + "pad:open:leases"
PAD_OPEN_COUNTS = PREFIX + "pad:open:counts"
