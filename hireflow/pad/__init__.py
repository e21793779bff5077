"""The live interview pad: one Yjs document per session, shared over the y-websocket protocol."""
