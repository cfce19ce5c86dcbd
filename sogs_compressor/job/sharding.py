"""Which host of a several-host job takes which scene key: a stable hash, never a position in a listing.

Every host lists the input itself, at a slightly different moment. A rule that numbers the keys of each host's
own listing shifts when a key appears or disappears in between, so scenes are lost or done twice. Here a
scene's host depends on nothing but the scene's own name: the sha256 of its output folder in look-alike form
(``naming.look_alike``), modulo the number of hosts. Scenes that would share an output folder (``a.ply`` and
``a.sog``, ``Case.ply`` and ``case.ply``, ``café`` in NFC and NFD) therefore land on the same host, which reports
the clash; and every host computes the same assignment from the same name.
"""

from __future__ import annotations

import hashlib
from collections import Counter

from sogs_compressor.job.naming import look_alike

RULE = ("sha256(UTF-8 of the scene's output folder, case-folded and Unicode-normalised) as a number, "
        "modulo the number of hosts, indexes the hosts sorted by their numeric suffix")


def host_index(identity: str, host_count: int) -> int:
    """The index of the host that takes the scene whose output folder is ``identity``."""
    if host_count <= 1:
        return 0
    digest = hashlib.sha256(look_alike(identity).encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % host_count


def assignment_report(identities: dict[str, str], hosts: list[str], host: str) -> dict:
    """What the job report says about sharding: the rule, how many listed scenes each host takes, and this
    host's keys (``identities`` maps every listed scene key to its output folder)."""
    counts: Counter = Counter(hosts[host_index(i, len(hosts))] for i in identities.values())
    mine = sorted(k for k, i in identities.items() if hosts[host_index(i, len(hosts))] == host)
    return {"rule": RULE, "hosts": hosts, "host": host, "listed": len(identities),
            "per_host": {h: counts.get(h, 0) for h in hosts}, "keys": mine}
