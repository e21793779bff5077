"""The aiohttp application: REST API, webhooks and the WebSocket endpoint."""
