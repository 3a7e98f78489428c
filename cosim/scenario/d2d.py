"""The d2d section: what clients do with the V2V sidelink (``radio.sidelink``).

Relaying and cluster aggregation are the device-to-device parts of hierarchical federated
foundation models (HF-FMs in the seed documents): a finished update that has no uplink reaches
the server through a neighbour, and nearby clients aggregate before one of them uploads.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from cosim.scenario.base import StrictModel


class D2DConfig(StrictModel):
    """Device-to-device relaying and cluster aggregation over the sidelink."""

    # A client whose upload cannot start (no serving cell) or fails (link failure, coverage
    # lost) hands its update over the sidelink to the neighbour that would deliver it soonest,
    # which uploads it on its own link.
    relay: bool = True
    # Who may relay: any vehicle of the fleet (the vehicles eligible to carry a partition run the
    # software) or only vehicles that are clients now.
    relays: Literal["fleet", "clients"] = "fleet"
    # Selected clients in sidelink range of each other at the round's start form clusters; each
    # member sends its update to the cluster head (the member with the best uplink), which
    # uploads their sample-weighted aggregate once.
    cluster: bool = False
    # The head waits for its members at most until this share of the time to the deadline is
    # left for its own upload (estimated at its uplink rate now, times this margin).
    cluster_upload_margin: float = Field(2.0, ge=1.0, le=100.0)
