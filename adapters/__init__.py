"""Platform adapters: each converts its platform's events to domain events and sends replies."""
