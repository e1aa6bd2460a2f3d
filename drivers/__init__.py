"""Built-in drivers, one module each; installed as the package ``nodeagent.drivers``."""
