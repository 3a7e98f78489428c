"""The ``hops`` trace: every transfer an update (or an aggregate, or the dispatched model) makes
on its way when clients deliver over the sidelink (relays, clusters, spanning trees): link type,
bytes, latency and the transmitter's energy.

Energy is the transmitter's power (``radio.rate.ue_tx_power_dbm`` on the cellular uplink,
``radio.sidelink.tx_power_dbm`` on the sidelink) times the transfer's duration: what it spends
keeping its transmitter on while the transfer lasts (including time spent sharing the cell or
waiting out a handoff), the per-operation energy of Fed-Span's accounting.
"""

from __future__ import annotations

from cosim.learning.federated.attempt import Attempt
from cosim.learning.federated.timeline import SIDELINK, UPLINK
from cosim.radio.transfers import TransferResult
from cosim.traces import TraceTable


def dbm_to_w(dbm: float) -> float:
    return 10.0 ** (dbm / 10.0) / 1000.0


class HopsTrace:
    """Appends one row per hop to the ``hops`` table."""

    def __init__(self, table: TraceTable, uplink_dbm: float, sidelink_dbm: float):
        self.table = table
        self.power_w = {UPLINK: dbm_to_w(uplink_dbm), SIDELINK: dbm_to_w(sidelink_dbm)}
        self.bytes = {UPLINK: 0, SIDELINK: 0}
        self.energy_j = {UPLINK: 0.0, SIDELINK: 0.0}

    def __call__(self, a: Attempt, res: TransferResult, dst: str, link: str, purpose: str) -> None:
        duration = res.t_end - res.t_start
        energy = self.power_w[link] * duration
        moved = int(round(res.bytes_moved))
        self.bytes[link] += moved
        self.energy_j[link] += energy
        self.table.append({
            "round": [a.round], "client": [a.client], "src": [res.vehicle], "dst": [dst],
            "link": [link], "purpose": [purpose], "nbytes": [res.nbytes], "bytes_moved": [moved],
            "t_start": [res.t_start], "t_end": [res.t_end], "latency_s": [duration],
            "energy_j": [energy], "ok": [res.ok], "reason": [res.reason],
        })

    def summary(self) -> dict[str, dict[str, float]]:
        return {"bytes": dict(self.bytes), "energy_j": {k: round(v, 6) for k, v in self.energy_j.items()}}
