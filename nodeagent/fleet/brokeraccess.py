"""RabbitMQ permissions for one agent: what its oslo.messaging use needs, and nothing of another node's.

With the broker password every agent used to hold, any node could bind a queue to the control
exchange with ``#`` and read every push, or consume the coordinator's queue. A user per agent,
with the regular expressions below, can declare, read and write only its own queues, publish only
to the coordinators' topics (calls, heartbeats) and the notifications, and bind only its own routing keys (RabbitMQ
topic permissions), so it can neither sniff the exchange nor take another node's messages.

    python -m nodeagent.fleet.brokeraccess HOST EXCHANGE [VHOST]   # prints the rabbitmqctl commands
"""

from __future__ import annotations

import re
import subprocess
import sys


def agent_permissions(exchange: str, host: str) -> dict[str, str]:
    """configure, write, read (resource permissions) and topic_write, topic_read (routing keys) for an agent."""
    e, h = re.escape(exchange), re.escape(host)
    own_queues = rf"{e}\.nodeagent|{e}\.nodeagent\.{h}|{e}\.nodeagent_fanout.*|reply_.*"
    notifications = rf"{e}\.notifications\..*"
    # oslo.messaging declares a notification's queue as it sends one: the heartbeats' too (the coordinators'
    # shared queue), so an agent may declare it and bind it, as it may the notifications'; never read it.
    heartbeats = rf"{e}\.nodeagent-heartbeats\.info"
    return {
        "configure": rf"^({e}|{own_queues}|{notifications}|{heartbeats})$",
        "write": rf"^({e}|amq\.default|{own_queues}|{notifications}|{heartbeats})$",
        "read": rf"^({e}|{own_queues})$",
        # On the topic exchange: publish only to the coordinators (calls, heartbeats) and the notifications, bind
        # only its own keys.
        "topic_write": rf"^({e}\.nodeagent-coordinator|{heartbeats}|{notifications})$",
        "topic_read": rf"^({e}\.nodeagent|{e}\.nodeagent\.{h})$",
    }


def commands(host: str, exchange: str, vhost: str = "/", user: str | None = None) -> list[list[str]]:
    """The rabbitmqctl commands that give agent ``host`` its user (the password is set separately)."""
    user = user or f"nodeagent-{host}"
    p = agent_permissions(exchange, host)
    return [["rabbitmqctl", "set_permissions", "-p", vhost, user, p["configure"], p["write"], p["read"]],
            ["rabbitmqctl", "set_topic_permissions", "-p", vhost, user, exchange, p["topic_write"], p["topic_read"]]]


def create_user(host: str, exchange: str, password: str, vhost: str = "/", user: str | None = None) -> str:
    """Make the user with its permissions (a lab, or a first set-up); returns the user name."""
    user = user or f"nodeagent-{host}"
    subprocess.run(["rabbitmqctl", "-q", "add_user", user, password], check=True, capture_output=True, timeout=60)
    for command in commands(host, exchange, vhost, user):
        subprocess.run([command[0], "-q", *command[1:]], check=True, capture_output=True, timeout=60)
    return user


def delete_user(user: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", "delete_user", user], capture_output=True, timeout=60)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3):
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 1
    print(f"rabbitmqctl add_user nodeagent-{args[0]}   # asks for the password")
    for command in commands(*args):
        print(" ".join(f"'{part}'" if any(c in part for c in "^$|()\\*") else part for part in command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
