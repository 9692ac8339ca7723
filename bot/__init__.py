"""chime's platform-neutral core: domain types, config, store, conversation service."""
