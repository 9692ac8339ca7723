"""chime's entry point: the CLI and the wiring of config, store, runtime and adapters."""
