"""The fleet at a glance in a browser: a read-only web view served by the coordinator (``[web] address``).

* ``app``      — the WSGI application: access (Keystone or a password file), no write method, safe headers;
* ``pages``    — the pages (fleet, node, drift timeline, events), one GET view and one template each;
* ``timeline`` — the drift plot's geometry (drawn as SVG by its template);
* ``auth``     — who may look, and the password file's scrypt hashes;
* ``server``   — serving it in a thread of the coordinator's process.

It only reads the inventory, so every coordinator of a fleet serves the same view. Server-rendered HTML, no
JavaScript; pages reload themselves (``[web] refresh``).
"""
