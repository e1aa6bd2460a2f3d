"""nodeagent: keep a node's networking configuration true to a desired-state document."""

__version__ = "0.1.0"
