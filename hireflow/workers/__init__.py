"""arq workers: Stream provisioning and teardown, Stream user sync, and the reconciler."""
