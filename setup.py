"""Packaging for nodeagent.

The top-level ``drivers/`` directory is installed as the package ``nodeagent.drivers``;
every built-in driver is declared in the ``nodeagent.drivers`` entry-point group exactly
the way a third-party package declares its own.
"""
from setuptools import setup

setup(
    name="nodeagent",
    version="0.1.0",
    description="Desired-state agent for OpenStack networking nodes",
    python_requires=">=3.10",
    packages=["nodeagent", "nodeagent.cli", "nodeagent.drivers"],
    package_dir={"nodeagent": "nodeagent", "nodeagent.drivers": "drivers"},
    install_requires=[
        "cliff>=4.0",
        "cryptography>=3.4",
        "oslo.config>=9.0",
        "oslo.messaging>=14.0",
        "ovsdbapp>=2.0",
        "pyroute2>=0.7",
        "prometheus-client>=0.17",
        "psutil>=5.9",
        "PyYAML>=6.0",
        "SQLAlchemy>=2.0",
        "stevedore>=5.0",
        "systemd-python>=234",
        "watchdog>=3.0",
    ],
    extras_require={
        "test": ["pytest>=7", "pytest-timeout>=2", "hypothesis>=6"],
    },
    entry_points={
        "console_scripts": [
            "nodeagent = nodeagent.cli.agent:main",
            "nodeagentctl = nodeagent.cli.ctl:main",
        ],
        "nodeagent.drivers": [
            "file = nodeagent.drivers.file:FileDriver",
            "command = nodeagent.drivers.command:CommandDriver",
            "ethtool = nodeagent.drivers.ethtool:EthtoolDriver",
            "ini = nodeagent.drivers.ini:IniDriver",
            "linux_bridge = nodeagent.drivers.linux_bridge:LinuxBridgeDriver",
            "ovs_bridge = nodeagent.drivers.ovs_bridge:OvsBridgeDriver",
            "service = nodeagent.drivers.service:ServiceDriver",
            "symlink = nodeagent.drivers.symlink:SymlinkDriver",
            "sysctl = nodeagent.drivers.sysctl:SysctlDriver",
        ],
    },
)
