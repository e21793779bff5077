"""HireFlow backend: REST API, realtime hub and workers for remote coding interviews."""
