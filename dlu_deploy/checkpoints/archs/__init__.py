"""Built-in architectures; each module registers its own (dlu_deploy.checkpoints.registry)."""
