"""Counting what a real MongoDB client sends (pymongo's command monitoring): no server is faked."""

from __future__ import annotations

from pymongo import monitoring


class Finds(monitoring.CommandListener):
    """Counts the `find` commands on one collection that a client with this listener sends."""

    def __init__(self, collection: str) -> None:
        self.collection = collection
        self.count = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find" and event.command["find"] == self.collection:
            self.count += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass
