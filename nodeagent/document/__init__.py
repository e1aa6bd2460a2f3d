"""The desired-state document: its model (resources, order, modes), loading it safely, and the drivers that
handle its resources (found through the ``nodeagent.drivers`` entry points). Both sides read it: the
coordinator renders and checks documents, the agent applies them."""
