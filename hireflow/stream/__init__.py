"""Stream (chat + video): the SDK clients HireFlow builds from its settings."""
