"""The WebSocket hub: a live lobby and per-session rooms, fanned out across instances through Redis."""
