"""The federated layer: rounds on the engine clock, in which connectivity decides who completes.

A round (synchronous, FedAvg with a deadline): the policy picks clients from what the server can
see; each picked client downloads its global modules (bytes through the radio's transfer
process), computes for samples x epochs x FLOPs per sample / its device's available FLOP/s, and
uploads its modules. A client that loses its link, leaves the network, has none, or misses the
deadline is recorded as failed with the reason and time. Only completed updates are trained for
real (``local_update``), in the order they reached the server, and averaged module by module.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import torch
from torch.utils.flop_counter import FlopCounterMode

from cosim.engine import Engine
from cosim.errors import InputError
from cosim.learning.data.datasets import ClientDataset, SampleCache, open_dataset
from cosim.learning.data.partition import ClientShard, partition
from cosim.learning.data.samples import Geometry
from cosim.learning.federated.aggregation import (
    FedBuffer,
    cloud_average,
    fedavg,
    mix,
    samples_per_key,
    staleness_weight,
)
from cosim.learning.federated.backhaul import backhaul_graph, edge_to_cloud_s
from cosim.learning.federated.clients import Client, ClientRegistry, available_flops
from cosim.learning.federated.policies import Candidate, ServerView, make_policy
from cosim.learning.local import evaluate, local_update, pick_device, to_device, trainable_modules
from cosim.learning.losses import task_loss
from cosim.learning.model import M3TModel, state_bytes
from cosim.learning.module_file import load_module_file
from cosim.scenario import TASKS, Scenario

PARTICIPATION_SCHEMA = pa.schema([
    ("round", pa.int32()), ("client", pa.int32()), ("vehicle", pa.string()),
    ("selected_at", pa.float64()), ("outcome", pa.string()), ("reason", pa.string()),
    ("t_download_end", pa.float64()), ("t_compute_end", pa.float64()),
    ("t_upload_end", pa.float64()), ("bytes_down", pa.int64()), ("bytes_up", pa.int64()),
    ("staleness", pa.int32()), ("model_version", pa.int32()),
])
METRICS_SCHEMA = pa.schema([
    ("round", pa.int32()), ("sim_time_s", pa.float64()), ("wall_time_s", pa.float64()),
    ("task", pa.string()), ("metric", pa.string()), ("value", pa.float64()),
])


@dataclass
class Attempt:
    """One client's round, as the participation trace records it."""

    round: int
    client: int
    vehicle: str
    selected_at: float
    model_version: int
    outcome: str = "failed"
    reason: str | None = None
    t_download_end: float | None = None
    t_compute_end: float | None = None
    t_upload_end: float | None = None
    bytes_down: int = 0
    bytes_up: int = 0
    staleness: int = 0
    names: list[str] = field(default_factory=list)


class FederatedLayer:
    name = "learning"

    def __init__(self, scenario: Scenario, source: Any = None):
        self.sc = scenario
        cfg = scenario.learning
        torch.manual_seed(scenario.seed)
        self.device = pick_device(cfg.local.device)
        self.model = M3TModel(cfg.model).to(self.device)
        self.geometry = Geometry(self.model.image_size, 4 * self.model.grid, cfg.model.bev_range_m)
        dataset = open_dataset(cfg.data)
        frames, city = dataset.describe()
        self.partition = partition(frames, city, cfg.data, scenario.seed)
        self.cache = SampleCache(dataset, self.geometry, cfg.data.cache_frames)
        tasks = tuple(t for t in TASKS if t in cfg.model.tasks)  # a client trains what the model has
        self.datasets = [ClientDataset(dataclasses.replace(s, tasks=tuple(t for t in s.tasks if t in tasks)),
                                       self.cache) for s in self.partition.clients]
        heldout = ClientShard(-1, self.partition.heldout, tasks, ("image", "lidar", "text"))
        self.eval_batches = ClientDataset(heldout, self.cache).ordered_batches(8)
        self.policy = make_policy(scenario.scheduling.policy, scenario.seed)
        self.global_state = self.model.export_modules(self.model.module_names())
        self.frozen = tuple(cfg.frozen_modules)
        self.init_skipped: list[str] = []
        if cfg.init_modules is not None:
            self.init_skipped = self._load_init(cfg.init_modules)
        self.version = 0
        self.round = 0
        self._flops: dict[tuple, float] = {}
        self._last_metric = ""
        self._last_eval_t = 0.0
        self._wall0 = time.perf_counter()
        self.participants = 0

    def _load_init(self, path) -> list[str]:
        """Start from a saved global model; return the saved modules this model has no place for."""
        saved = load_module_file(path)
        known = [k for k in saved if k in self.global_state]
        for key in known:
            if saved[key].shape != self.global_state[key].shape:
                raise InputError(path, "learning.init_modules",
                                 f"{key} has shape {tuple(saved[key].shape)}, the model "
                                 f"{tuple(self.global_state[key].shape)} (another model config?)")
            self.global_state[key] = saved[key].to(self.global_state[key].dtype)
        if not known:
            raise InputError(path, "learning.init_modules", "holds none of this model's modules")
        depth = {"heads": 2, "peft": 3}  # heads.<task>, peft.<branch>.<module>, task_adapter
        return sorted({".".join(k.split(".")[:depth.get(k.split(".")[0], 1)])
                       for k in saved if k not in self.global_state})

    # ---- wiring ----------------------------------------------------------------------------
    def attach(self, engine: Engine) -> None:
        self.env = engine.env
        self.engine = engine
        self.mobility = engine.layer("mobility")
        self.ideal = self.sc.clients.ideal_connectivity
        self.radio = None if self.ideal else engine.layer("radio")
        self.registry = ClientRegistry(self.sc.clients, list(self.partition.clients), self.sc.seed,
                                       self.mobility.vehicle_type)
        self.run_dir = engine.traces.folder
        sched = self.sc.scheduling
        if self.ideal:  # every client present, nothing between it and the server
            self.registry.bind_all()
            self.predictor = None  # nothing to predict: every window is endless
        else:
            self.mobility.listeners.append(
                lambda states: self.registry.update(states.entered, states.left, states.t))
            if sched.policy == "oracle" or sched.predictor == "oracle":
                from cosim.radio.prediction import OraclePredictor

                self.predictor = OraclePredictor(sched.oracle_windows)
            else:
                self.predictor = self.radio.history_predictor()
        self.participation = engine.traces.table("participation", PARTICIPATION_SCHEMA)
        self.metrics = engine.traces.table("metrics", METRICS_SCHEMA)
        method = self.sc.aggregation.method
        rounds = {"sync": self._rounds, "hierarchical": self._hierarchical_rounds}.get(
            method, self._async_rounds)
        engine.env.process(self._until_done(rounds()))
        if self.sc.aggregation.eval_every_s:
            engine.env.process(self._periodic_evaluation(self.sc.aggregation.eval_every_s))

    # ---- the server ---------------------------------------------------------------------------
    def _until_done(self, rounds):
        """Run the server; end the run when max_rounds are done (unless told not to)."""
        yield from rounds
        if self.sc.aggregation.end_run_at_max_rounds:
            self.engine.stop()

    def _rounds(self):
        agg = self.sc.aggregation
        self._evaluate()
        while agg.max_rounds is None or self.round < agg.max_rounds:
            candidates = self._candidates()
            view = ServerView(self.env.now, self.round + 1, agg.round_deadline_s)
            chosen = self.policy.select(view, candidates, self.sc.scheduling.per_round)
            if not chosen:
                yield self.env.timeout(5.0)  # nobody to pick: look again shortly
                continue
            self.round += 1
            deadline = self.env.now + agg.round_deadline_s
            procs = [self.env.process(self._client_round(self.registry.clients[c], deadline))
                     for c in chosen]
            self.participants = len(procs)
            yield self.env.all_of(procs)
            attempts = [p.value for p in procs]
            done = sorted((a for a in attempts if a.outcome == "completed"),
                          key=lambda a: a.t_upload_end)
            updates = []
            learning = self.sc.learning
            for a in done:  # trained for real, in the order the updates reached the server
                data = self.datasets[a.client]
                modules, stats = local_update(self.model, self.global_state, data, learning.local,
                                              learning.balancing, seed=self.sc.seed * 100_003 + self.round,
                                              count_flops=False,  # measured once per task mix
                                              frozen=self.frozen)
                updates.append((modules, float(len(data) * self.sc.learning.local.epochs)))
                self._reported(a, stats)
            if updates:
                self.global_state = fedavg(self.global_state, updates)
                self.version += 1
            self._record(attempts)
            if self.round % agg.eval_every_rounds == 0:
                self._evaluate()
            if agg.min_round_gap_s:
                yield self.env.timeout(agg.min_round_gap_s)

    def _hierarchical_rounds(self):
        """Edge rounds at every cell (clients picked among those the cell serves, FedAvg into the
        cell's edge model), and a cloud average of the edge models every ``cloud_every`` edge
        rounds, after the backhaul has carried them (networkx shortest-path latency + bytes)."""
        agg = self.sc.aggregation
        cells = self.radio.cells
        graph = backhaul_graph(cells.kind, cells.x, cells.y, agg.macro_to_cloud_ms, agg.small_to_macro_ms)
        edge_state: dict[int, dict] = {}
        edge_samples: dict[int, dict[str, float]] = {}
        edge_rounds = 0
        self._evaluate()
        while agg.max_rounds is None or self.version < agg.max_rounds:
            deadline = self.env.now + agg.edge_period_s
            by_cell: dict[int, list[Candidate]] = {}
            for c in self._candidates():
                if c.connected:
                    by_cell.setdefault(c.serving_cell, []).append(c)
            self.round += 1
            view = ServerView(self.env.now, self.round, agg.edge_period_s)
            cell_of: dict[int, int] = {}
            for cell, cands in sorted(by_cell.items()):
                for client in self.policy.select(view, cands, self.sc.scheduling.per_round):
                    cell_of[client] = cell
            procs = [self.env.process(self._client_round(self.registry.clients[c], deadline))
                     for c in sorted(cell_of)]
            self.participants = len(procs)
            yield self.env.all_of(procs)
            attempts = [p.value for p in procs]
            learning = self.sc.learning
            done = sorted((a for a in attempts if a.outcome == "completed"), key=lambda a: a.t_upload_end)
            per_cell: dict[int, list] = {}
            for a in done:  # each edge trains its clients from its own model, in arrival order
                cell = cell_of[a.client]
                start = edge_state.get(cell, self.global_state)
                data = self.datasets[a.client]
                modules, stats = local_update(self.model, start, data, learning.local, learning.balancing,
                                              seed=self.sc.seed * 100_003 + self.round, count_flops=False,
                                              frozen=self.frozen)
                self._reported(a, stats)
                per_cell.setdefault(cell, []).append((modules, float(len(data) * learning.local.epochs)))
            for cell, updates in per_cell.items():
                edge_state[cell] = fedavg(edge_state.get(cell, self.global_state), updates)
                samples = edge_samples.setdefault(cell, {})
                for key, weight in samples_per_key(updates).items():
                    samples[key] = samples.get(key, 0.0) + weight
            self._record(attempts)
            yield self.env.timeout(max(0.0, deadline - self.env.now))
            edge_rounds += 1
            if edge_rounds % agg.cloud_every or not edge_state:
                continue
            size = state_bytes(self.global_state)
            delay = max(edge_to_cloud_s(graph, c, size, agg.backhaul_gbps * 1e9) for c in edge_state)
            yield self.env.timeout(delay)
            self.global_state = cloud_average(self.global_state,
                                              [(edge_state[c], edge_samples[c]) for c in sorted(edge_state)])
            edge_state, edge_samples = {}, {}
            self.version += 1
            if self.version % agg.eval_every_rounds == 0:
                self._evaluate()

    def _async_rounds(self):
        """FedAsync / FedBuff: keep ``per_round`` clients busy; each arrival is trained from the
        model version it downloaded and folded in with its staleness weight."""
        agg = self.sc.aggregation
        buffer = FedBuffer(agg.buffer_size, agg.server_lr) if agg.method == "fedbuff" else None
        versions = {0: self.global_state}  # model versions still in use by clients in flight
        in_flight: dict[int, Any] = {}  # client -> its process
        started: dict[int, int] = {}  # client -> the version it downloaded
        self._evaluate()
        while agg.max_rounds is None or self.version < agg.max_rounds:
            free = self.sc.scheduling.per_round - len(in_flight)
            if free > 0:
                candidates = [c for c in self._candidates() if c.client not in in_flight]
                view = ServerView(self.env.now, self.version + 1, agg.round_deadline_s)
                for c in self.policy.select(view, candidates, free)[:free]:
                    client = self.registry.clients[c]
                    versions.setdefault(self.version, self.global_state)
                    started[c] = self.version
                    in_flight[c] = self.env.process(
                        self._client_round(client, self.env.now + agg.round_deadline_s))
            self.participants = len(in_flight)
            if not in_flight:
                yield self.env.timeout(5.0)
                continue
            yield self.env.any_of(list(in_flight.values()))
            for c in [c for c, p in in_flight.items() if p.triggered]:
                a = in_flight.pop(c).value
                started.pop(c)
                a.staleness = self.version - a.model_version
                if a.outcome == "completed":
                    self._fold_in(a, versions[a.model_version], buffer)
                self._record([a])
            keep = set(started.values()) | {self.version}
            for v in [v for v in versions if v not in keep]:
                del versions[v]

    def _fold_in(self, a: Attempt, start: dict, buffer) -> None:
        agg, learning = self.sc.aggregation, self.sc.learning
        data = self.datasets[a.client]
        modules, stats = local_update(self.model, start, data, learning.local, learning.balancing,
                                      seed=self.sc.seed * 100_003 + self.version, count_flops=False,
                                      frozen=self.frozen)
        self._reported(a, stats)
        weight = staleness_weight(agg.staleness, a.staleness, agg.staleness_a, agg.staleness_b)
        if buffer is None:
            self.global_state = mix(self.global_state, modules, agg.async_alpha * weight)
        else:
            buffer.add(start, modules, weight)
            if not buffer.full():
                return
            self.global_state = buffer.apply(self.global_state)
        self.version += 1
        self.round = self.version
        if self.version % agg.eval_every_rounds == 0:
            self._evaluate()

    def _reported(self, a: Attempt, stats) -> None:
        """What a completed client reports with its update (Oort uses the loss)."""
        client = self.registry.clients[a.client]
        client.rounds_completed += 1
        client.last_round = a.round
        client.last_loss = float(sum(stats.last_epoch_loss.values()) / max(len(stats.last_epoch_loss), 1))

    def _client_round(self, client: Client, deadline: float):
        """Download, compute, upload; the process's value is the Attempt."""
        vehicle = client.vehicle
        a = Attempt(self.round, client.index, vehicle, self.env.now, self.version)
        client.rounds_selected += 1
        yield from self._timeline(client, vehicle, deadline, a)
        return a

    def _timeline(self, client: Client, vehicle: str, deadline: float, a: Attempt):
        data = self.datasets[client.index]
        a.names = trainable_modules(self.model, data.tasks, data.modalities, self.frozen)
        size = self._bytes_of(a.names)
        a.bytes_down = size
        if self.ideal:  # no air in between: only the computation takes time
            a.t_download_end = self.env.now
            yield self.env.timeout(self._compute_s(client, data))
            a.t_compute_end = a.t_upload_end = self.env.now
            a.bytes_up, a.outcome = size, "completed"
            return
        res = yield self.radio.transfer(vehicle, size, "down", timeout_s=deadline - self.env.now)
        if not res.ok:
            a.reason = "deadline" if res.reason == "timeout" else res.reason
            return
        a.t_download_end = self.env.now
        compute_s = self._compute_s(client, data)
        if self.env.now + compute_s > deadline:
            yield self.env.timeout(deadline - self.env.now)
            a.reason = "deadline"
            return
        yield self.env.timeout(compute_s)
        if client.vehicle != vehicle:
            a.reason = "left_network"
            return
        a.t_compute_end = self.env.now
        a.bytes_up = size
        res = yield self.radio.transfer(vehicle, size, "up", timeout_s=max(deadline - self.env.now, 1e-9))
        if not res.ok:
            a.reason = "deadline" if res.reason == "timeout" else res.reason
            return
        a.outcome, a.t_upload_end = "completed", self.env.now

    # ---- what the server can see -------------------------------------------------------------
    def _candidates(self) -> list[Candidate]:
        cur = self.mobility.current
        parked = dict(zip(cur.ids, cur.parked, strict=True))
        out = []
        for c in self.registry.present():
            data = self.datasets[c.index]
            if not data.tasks:
                continue  # holds none of the model's tasks: nothing to train
            names = trainable_modules(self.model, data.tasks, data.modalities, self.frozen)
            size = self._bytes_of(names)
            if self.ideal:
                out.append(Candidate(
                    c.index, c.vehicle, True, 0, math.inf, math.inf, math.inf, size, size,
                    self._compute_s(c, data), tuple(data.tasks), tuple(data.modalities), len(data),
                    False, c.rounds_selected, c.rounds_completed, c.last_loss, c.last_round))
                continue
            out.append(Candidate(
                c.index, c.vehicle, self.radio.serving_cell(c.vehicle) >= 0,
                self.radio.serving_cell(c.vehicle), self.radio.rate_bps(c.vehicle, "down"),
                self.radio.rate_bps(c.vehicle, "up"), self.predictor.remaining_s(c.vehicle, self.env.now),
                size, size, self._compute_s(c, data), tuple(data.tasks), tuple(data.modalities),
                len(data), bool(parked.get(c.vehicle, False)), c.rounds_selected, c.rounds_completed,
                c.last_loss, c.last_round))
        return out

    def _bytes_of(self, names: list[str]) -> int:
        """Bytes of the named global modules: what a client downloads and uploads."""
        return state_bytes({k: v for k, v in self.global_state.items()
                            if any(k.startswith(n + ".") for n in names)})

    def _compute_s(self, client: Client, data: ClientDataset) -> float:
        parked = bool(self.mobility.current.parked[self.mobility.current.ids == client.vehicle].any())
        flops = self._flops_per_sample(data)
        local = self.sc.learning.local
        return len(data) * local.epochs * flops / available_flops(client.profile, parked)

    def _flops_per_sample(self, data: ClientDataset) -> float:
        """FLOPs of one training step per sample, measured once per task/modality mix."""
        key = (tuple(data.tasks), tuple(data.modalities))
        if key not in self._flops:
            inputs, targets = next(data.batches(min(4, len(data)), torch.Generator().manual_seed(0)))
            with FlopCounterMode(display=False) as counter:
                out = self.model(to_device(inputs, self.device), tasks=data.tasks)
                loss = sum(task_loss(t, out[t], to_device(targets[t], self.device)) for t in data.tasks)
                loss.backward()
            self.model.zero_grad(set_to_none=True)
            self._flops[key] = counter.get_total_flops() / len(inputs["text"])
        return self._flops[key]

    # ---- traces --------------------------------------------------------------------------------
    def _record(self, attempts: list[Attempt]) -> None:
        def col(name):
            return [getattr(a, name) for a in attempts]

        self.participation.append({
            "round": col("round"), "client": col("client"), "vehicle": col("vehicle"),
            "selected_at": col("selected_at"), "outcome": col("outcome"), "reason": col("reason"),
            "t_download_end": col("t_download_end"), "t_compute_end": col("t_compute_end"),
            "t_upload_end": col("t_upload_end"), "bytes_down": col("bytes_down"),
            "bytes_up": col("bytes_up"), "staleness": col("staleness"),
            "model_version": col("model_version"),
        })

    def _periodic_evaluation(self, period: float):
        """Evaluate every ``period`` simulated seconds unless a round just did."""
        while True:
            yield self.env.timeout(period)
            if self.env.now - self._last_eval_t >= period - 1e-9:
                self._evaluate()

    def _evaluate(self) -> None:
        self._last_eval_t = self.env.now
        settings = self.sc.learning.evaluation
        tasks = [t for t in (settings.tasks or self.model.heads) if t in self.model.heads]
        results = evaluate(self.model, self.global_state, self.eval_batches, tasks=tasks,
                           settings=settings)
        rows = [(t, m, v) for t, metrics in results.items() for m, v in metrics.items()]
        wall = time.perf_counter() - self._wall0
        self.metrics.append({"round": [self.round] * len(rows), "sim_time_s": [self.env.now] * len(rows),
                             "wall_time_s": [wall] * len(rows), "task": [r[0] for r in rows],
                             "metric": [r[1] for r in rows], "value": [float(r[2]) for r in rows]})
        head = {"seg3d": "mIoU", "det2d": "mAP50"}
        self._last_metric = " ".join(f"{t} {results[t][m]:.3f}" for t, m in head.items() if t in results)

    def progress_fields(self) -> dict[str, str]:
        return {"round": str(self.round), "participants": str(self.participants),
                "eval": self._last_metric}

    def finish(self) -> None:
        """Keep the final global model: a later run can start from it (learning.init_modules)."""
        torch.save(self.global_state, self.run_dir / "global_modules.pt")

    def summary(self) -> dict[str, Any]:
        return {"rounds": self.round, "model_version": self.version,
                "init_modules_skipped": self.init_skipped,
                "clients_present": len(self.registry.present()),
                "samples_decoded": self.cache.decoded}

