"""Command-line front ends: ``nodeagent`` on a node, ``nodeagentctl`` for the operator."""
