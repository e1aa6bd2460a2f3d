"""One problem the option checks found: small, frozen, and free of secret values."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Finding:
    """A key (or a whole file, when ``key`` is empty) the target release would not read as written."""

    severity: str      # "error" blocks a push or a local apply; "warning" is shown
    resource: str      # the document's resource id
    file: str          # the config file's name, e.g. ml2_conf.ini
    section: str
    key: str
    message: str       # never contains a secret value
    node: str = ""     # set by the coordinator's checks

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def where(self) -> str:
        key = f" [{self.section}] {self.key}" if self.key else f" [{self.section}]" if self.section else ""
        node = f"node {self.node} " if self.node else ""
        return f"{node}resource '{self.resource}' {self.file}{key}"

    def describe(self) -> str:
        return f"{self.severity}: {self.where()}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.is_error]
