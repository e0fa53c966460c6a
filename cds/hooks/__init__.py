"""CDS Hooks 2.0: request and response models, the service registry."""
