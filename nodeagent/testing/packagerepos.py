"""Tiny package repositories and scratch roots for the package driver's tests and benchmark, by the real tools.

Debian: packages built by ``dpkg-deb``, indexed by ``dpkg-scanpackages``, a ``file:`` source in the root's
own ``etc/apt/sources.list`` and an empty dpkg database, as ``debootstrap`` leaves a new system. RPM: packages
built by ``rpmbuild``, indexed by ``createrepo_c``, a ``.repo`` file in the root's ``etc/yum.repos.d`` and the
release named in ``etc/dnf/vars/releasever`` (a root with no release package). Every package installs one
file, ``/usr/share/NAME/version``, holding its version: what a test reads to see what is installed.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

DEBS = (("na-tool", "1.0"), ("na-tool", "2.0"), ("na-other", "1.0"))
RPMS = (("na-tool", "1.0", "1"), ("na-tool", "2.0", "1"), ("na-other", "1.0", "1"))

SPEC = """Name: {name}
Version: {version}
Release: {release}
Summary: nodeagent test package
License: MIT
BuildArch: noarch
%description
A package the package driver's tests install into a scratch root.
%install
mkdir -p %{{buildroot}}/usr/share/{name}
echo {version} > %{{buildroot}}/usr/share/{name}/version
%files
/usr/share/{name}/version
"""


def run(*command: str | Path, **options) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, check=True, timeout=120,
                          **options)


def deb_repository(directory: Path) -> Path:
    """A flat apt repository of the DEBS: the .deb files and their Packages index."""
    repository = directory / "deb-repository"
    repository.mkdir()
    for name, version in DEBS:
        tree = directory / "deb-build" / f"{name}-{version}"
        (tree / "DEBIAN").mkdir(parents=True)
        (tree / "usr/share" / name).mkdir(parents=True)
        (tree / "usr/share" / name / "version").write_text(version + "\n")
        (tree / "DEBIAN/control").write_text(f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
                                             f"Maintainer: nodeagent tests <tests@example.org>\n"
                                             f"Description: nodeagent test package\n")
        run("dpkg-deb", "-Zgzip", "--root-owner-group", "--build", tree, repository / f"{name}_{version}_all.deb")
    index = run("dpkg-scanpackages", "--multiversion", ".", "/dev/null", cwd=repository).stdout
    (repository / "Packages").write_text(index)
    return repository


def apt_root(root: Path, repository: Path) -> Path:
    """A root with an empty dpkg database and the repository as its only source, its index fetched."""
    for place in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "etc/apt/apt.conf.d",
                  "etc/apt/preferences.d", "etc/apt/sources.list.d", "var/cache/apt/archives/partial",
                  "var/lib/apt/lists/partial", "var/log/apt"):
        (root / place).mkdir(parents=True, exist_ok=True)
    (root / "var/lib/dpkg/status").write_text("")  # a new system: nothing installed
    (root / "etc/apt/sources.list").write_text(f"deb [trusted=yes] file:{repository} ./\n")
    config = root.parent / "apt-update.conf"
    config.write_text(f'Dir "{root}/";\n')
    run("apt-get", "update", "-q", env={"APT_CONFIG": str(config), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    return root


def rpm_repository(directory: Path) -> Path:
    """A dnf repository of the RPMS: the .rpm files and their repodata."""
    repository = directory / "rpm-repository"
    repository.mkdir()
    build = directory / "rpm-build"
    build.mkdir()
    for name, version, release in RPMS:
        spec = build / f"{name}-{version}.spec"
        spec.write_text(SPEC.format(name=name, version=version, release=release))
        run("rpmbuild", "--quiet", "-bb", "--define", f"_topdir {build / 'top'}", "--define",
            f"_rpmdir {repository}", "--define", "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm",
            spec)
    run("createrepo_c", "-q", repository)
    return repository


def dnf_root(root: Path, repository: Path, versionlock: bool = True) -> Path:
    """A root with the repository as its only one; with the versionlock plugin's (empty) list when asked."""
    (root / "etc/yum.repos.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/yum.repos.d/nodeagent-test.repo").write_text(
        f"[nodeagent-test]\nname=nodeagent test\nbaseurl=file://{repository}\ngpgcheck=0\n")
    (root / "etc/dnf/vars").mkdir(parents=True, exist_ok=True)
    (root / "etc/dnf/vars/releasever").write_text("1\n")
    (root / "etc/dnf/dnf.conf").write_text("[main]\ngpgcheck=0\n")
    if versionlock:
        (root / "etc/dnf/plugins").mkdir(parents=True, exist_ok=True)
        (root / "etc/dnf/plugins/versionlock.list").touch()
    return root


def installed_file(root: Path, name: str) -> str | None:
    """The version a test package's file says, or None when it is not there."""
    path = root / "usr/share" / name / "version"
    return path.read_text().strip() if path.exists() else None
