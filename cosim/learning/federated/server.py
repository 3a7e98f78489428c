"""The federated layer: one server loop on the engine clock, in which connectivity decides who
completes.

The server builds the model and the clients' data, and drives an aggregation strategy
(``strategies/``): the strategy picks clients through the scheduling policy, each picked client
runs its round through the radio port (``timeline.py``: download, compute, upload), and the
strategy turns the updates that completed into the next global model. Only completed updates are
trained for real (``training.py``). What the server may ask of mobility and the radio comes in
through ports (``cosim.ports``), wired by the runner (``wiring.py``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import simpy
import torch

from cosim.engine import Engine
from cosim.learning.federated.attempt import Attempt, participation_rows
from cosim.learning.federated.clients import ClientRegistry
from cosim.learning.federated.compression import compress
from cosim.learning.federated.cost import ComputeCost
from cosim.learning.federated.d2d import Relay
from cosim.learning.federated.deferred import Deferred, DeferredState, resolved
from cosim.learning.federated.drift import DriftSchedule
from cosim.learning.federated.evaluation import GlobalEvaluation
from cosim.learning.federated.hops import HopsTrace, dbm_to_w
from cosim.learning.federated.journal import TrainingJournal
from cosim.learning.federated.personalisation import personalise
from cosim.learning.federated.policies import Candidate, make_policy
from cosim.learning.federated.remote import make_trainer
from cosim.learning.federated.settings import FederatedSettings
from cosim.learning.federated.setup import build_learning
from cosim.learning.federated.strategies import make_strategy
from cosim.learning.federated.strategies.base import (
    Decision,
    Launch,
    NewModel,
    Record,
    RoundEnd,
    Selection,
)
from cosim.learning.federated.timeline import Delivery, client_round
from cosim.learning.federated.training import LocalTrainer, State, TrainedUpdate, TrainJob, l2_weight
from cosim.learning.federated.tree import (
    EDGE_WEIGHT,
    TreeNode,
    TreeStats,
    connectivity_graph,
    form_clusters,
    spanning_trees,
)
from cosim.learning.federated.wiring import LearningPorts
from cosim.learning.lookup import LookupBaseline
from cosim.learning.module_file import apply_init_modules
from cosim.learning.support import heldout_support
from cosim.names import TASK_INFO
from cosim.run_folder import RunFailedError
from cosim.trace_schemas import (
    HOPS,
    HOPS_SCHEMA,
    METRICS,
    METRICS_SCHEMA,
    PARTICIPATION,
    PARTICIPATION_SCHEMA,
)

# Held-out frames per forward pass of an evaluation: on a CPU, larger matrices run faster (an
# evaluation of sf_downtown's 160 held-out frames, cosim-tiny in bf16 on one thread: 0.84 s of
# forward passes in batches of 8, 0.55 s in batches of 40).
EVALUATION_BATCH = 32


@dataclass
class Flight:
    """A client whose round is under way: its process, and the state it trains from."""

    process: simpy.Process
    start: State | DeferredState


class FederatedLayer:
    name = "learning"

    def __init__(self, settings: FederatedSettings, ports: LearningPorts):
        self.settings, self.ports = settings, ports
        cfg = self.cfg = settings.learning
        self.seed = settings.seeds["training"]  # every round's training draws derive from it
        self.per_round = settings.scheduling.per_round
        setup = build_learning(cfg, settings.seeds)
        self.device, self.model, self.geometry = setup.device, setup.model, setup.geometry
        self.partition, self.cache, self.datasets = setup.partition, setup.cache, setup.datasets
        self.heldout = setup.heldout
        self.precision = setup.precision
        self.policy = make_policy(settings.scheduling.policy, settings.seeds["connectivity"])
        self.global_state: State | DeferredState = self.model.export_modules(self.model.module_names())
        frozen = setup.frozen
        self.init_skipped: list[str] = []
        if cfg.init_modules is not None:
            self.init_skipped = apply_init_modules(cfg.init_modules, self.global_state)
        # workers (processes, Ray actors) build their model in the precision resolved here
        resolved = cfg.model_copy(update={"precision": self.precision.name})
        self.trainer = make_trainer(resolved, settings.seeds, LocalTrainer(
            self.model, self.datasets, cfg.local, cfg.balancing, frozen, l2_weight(cfg)))
        self.cost = ComputeCost(self.model, cfg, ports.mobility, frozen)
        self.mobility, self.radio, self.predictor = ports.mobility, ports.radio, ports.predictor
        self.version = 0
        self.round = 0
        self.scored_version = -1  # the model version last evaluated (the run's end scores a newer)
        self.participants = 0
        self.in_flight: dict[int, Flight] = {}
        self.personalisation: dict[str, Any] | None = None  # run.json's summary of it
        self.tree_stats = TreeStats()
        self.lookup: dict[str, dict[str, float]] | None = None  # the model-free baseline's scores
        self._lookup_later = self._lookup_baseline  # _serve queues it on the evaluation's thread

    # ---- wiring ----------------------------------------------------------------------------
    def attach(self, engine: Engine) -> None:
        self.env = engine.env
        self.engine = engine
        self.registry = ClientRegistry(self.settings.clients, list(self.partition.clients),
                                       self.settings.seeds["connectivity"],
                                       self.mobility.vehicle_type)
        self.ports.presence.bind(self.registry)
        self.relay = self._d2d_relay()
        self.hops = self._hops_trace(engine)
        self.run_dir = engine.traces.folder
        self.participation = engine.traces.table(PARTICIPATION, PARTICIPATION_SCHEMA)
        self.journal = (TrainingJournal(self.run_dir, self.settings.journal)
                        if self.settings.journal is not None else None)
        self.evaluation = GlobalEvaluation(self.model,
                                           lambda: self.heldout.ordered_batches(EVALUATION_BATCH),
                                           self.cfg.evaluation,
                                           engine.traces.table(METRICS, METRICS_SCHEMA))
        self.strategy = make_strategy(self.settings.aggregation, self)
        self.drift = (DriftSchedule(self.cfg.drift, self.datasets, self.settings.seeds["data"])
                      if self.cfg.drift is not None else None)
        self.anchors: dict[int, State] = {}  # continual l2: the global model when a mix changed
        # a sync round's updates train while the next round's radio runs (``deferred.py``), unless
        # something reads them sooner: a policy reading the losses clients report, the journal
        # (it records each call's updates), drift's continual pull (anchors on the global model)
        self.overlap = (self.cfg.local.overlap and self.trainer.background
                        and self.journal is None and self.drift is None
                        and not self.policy.reads_losses)
        if self.drift is not None:  # before the server: events at 0 s come first
            engine.env.process(self.drift.process(engine.env, self._on_drift))
        engine.env.process(self._serve())
        if self.settings.aggregation.eval_every_s:
            engine.env.process(self._periodic_evaluation(self.settings.aggregation.eval_every_s))

    def _d2d_relay(self) -> Relay | None:
        """The sidelink follows the clients (and the fleet that may relay for them)."""
        sidelink, d2d = self.ports.sidelink, self.settings.d2d
        if sidelink is None:
            return None
        registry = self.registry
        sidelink.track(lambda: registry.by_vehicle, lambda: registry.fleet)
        if d2d is None or not d2d.relay:
            return None
        relays = (lambda: registry.fleet) if d2d.relays == "fleet" else (lambda: registry.by_vehicle)
        return Relay(self.env, self.radio, sidelink, relays)

    def _hops_trace(self, engine: Engine) -> HopsTrace | None:
        """Traced when updates may travel over the sidelink (relays, clusters, spanning trees)."""
        s = self.settings
        if (s.uplink_tx_power_dbm is None or s.sidelink_tx_power_dbm is None
                or (s.d2d is None and s.aggregation.method != "spanning_tree")):
            return None
        return HopsTrace(engine.traces.table(HOPS, HOPS_SCHEMA), s.uplink_tx_power_dbm,
                         s.sidelink_tx_power_dbm)

    def _on_drift(self, clients: list[int]) -> None:
        """Continual l2: a client whose mix changes is pulled towards the global model of now,
        once there is something learnt to keep (not at the first model version)."""
        if l2_weight(self.cfg) > 0.0 and self.version > 0:
            for c in clients:
                self.anchors[c] = dict(self.global_state)

    # ---- the server loop -------------------------------------------------------------------
    def _serve(self):
        """Select, wait for rounds to end, hand arrivals to the strategy, aggregate; until done.
        The run ends with the server when max_rounds are done (unless told not to)."""
        strategy = self.strategy
        self.evaluate()
        # model-free: on the evaluation's thread, if it has one, while the rounds go on
        self._lookup_later = self.evaluation.later(self._lookup_baseline)
        while not strategy.done():
            self._apply(strategy.select())
            self.participants = len(self.in_flight)
            if not self.in_flight and strategy.idle_s is not None:
                yield self.env.timeout(strategy.idle_s)
                continue
            yield strategy.wait([f.process for f in self.in_flight.values()])
            for client in [c for c, f in self.in_flight.items() if f.process.triggered]:
                flight = self.in_flight.pop(client)
                for decision in strategy.on_arrival(flight.process.value, flight.start):
                    self._apply(decision)
            for step in strategy.aggregate():
                if isinstance(step, simpy.Event):
                    yield step
                else:
                    self._apply(step)
        if self.settings.aggregation.end_run_at_max_rounds:
            self.engine.stop()

    def _apply(self, decision: Decision) -> None:
        """The one place the server's round, model version and global model change, and where
        rounds are launched, attempts recorded and models evaluated."""
        strategy, every = self.strategy, self.settings.aggregation.eval_every_rounds
        if isinstance(decision, Selection):
            if decision.new_round:
                self.round += 1
            for launch in decision.launches:
                self.launch(launch)
        elif isinstance(decision, NewModel):
            self.global_state = decision.state
            self.version += 1
            if strategy.round_is_version:
                self.round = self.version
            if strategy.evaluate_by == "version" and self.version % every == 0:
                self.evaluate()
        elif isinstance(decision, Record):
            self.participation.append(participation_rows(decision.attempts))
        elif isinstance(decision, RoundEnd) and strategy.evaluate_by == "round" and self.round % every == 0:
            self.evaluate()

    # ---- what strategies call ----------------------------------------------------------------
    def candidates(self) -> list[Candidate]:
        """The present clients as the server sees them now (what a policy may know)."""
        out = []
        now = self.env.now
        for c in self.registry.present():
            data, vehicle = self.datasets[c.index], c.vehicle
            assert vehicle is not None  # a present client rides a vehicle
            if not data.tasks:
                continue  # holds none of the model's tasks: nothing to train
            cell = self.radio.serving_cell(vehicle)
            out.append(Candidate(
                client=c.index, vehicle=vehicle, connected=cell >= 0, serving_cell=cell,
                dl_rate_bps=self.radio.rate_bps(vehicle, "down"),
                ul_rate_bps=self.radio.rate_bps(vehicle, "up"),
                predicted_window_s=self.predictor.remaining_s(vehicle, now),
                bytes_down=self.cost.bytes(data, "down"), bytes_up=self.cost.bytes(data, "up"),
                compute_s=self.cost.seconds(c, data),
                tasks=tuple(data.tasks), modalities=tuple(data.modalities), samples=len(data),
                parked=self.mobility.is_parked(vehicle), rounds_selected=c.rounds_selected,
                rounds_completed=c.rounds_completed, last_loss=c.last_loss, last_round=c.last_round))
        return out

    def launch(self, launch: Launch) -> None:
        """Start a client's round now; it trains from ``launch.start`` if it completes."""
        index, deadline, start, node = launch.client, launch.deadline, launch.start, launch.node
        client, data = self.registry.clients[index], self.datasets[index]
        assert client.vehicle is not None  # launched from the present candidates
        attempt = Attempt(self.round, index, client.vehicle, self.env.now, self.version,
                          tasks=tuple(data.tasks), modalities=tuple(data.modalities))
        client.rounds_selected += 1
        nbytes = (self.cost.bytes(data, "down"), self.cost.bytes(data, "up"))
        delivery = None
        if self.relay is not None or node is not None:
            d2d = self.settings.d2d
            margin = d2d.cluster_upload_margin if d2d is not None else 2.0
            delivery = Delivery(self.relay, node, self.ports.sidelink, self._aggregate_bytes, margin,
                                self.hops)
        process = self.env.process(client_round(self.env, self.radio, client, attempt, nbytes,
                                                lambda: self.cost.seconds(client, data), deadline,
                                                delivery))
        self.in_flight[index] = Flight(process, start)

    def form_clusters(self, chosen: list[int], candidates: list[Candidate], always: bool = False
                      ) -> dict[int, TreeNode]:
        """The round's clusters among the chosen clients (none unless d2d.cluster, or ``always``:
        the fog tier of hierarchical FL)."""
        if not always and (self.settings.d2d is None or not self.settings.d2d.cluster):
            return {}
        sidelink = self.ports.sidelink
        assert sidelink is not None  # clusters and fog tiers validate only with a sidelink
        return form_clusters(self.env, chosen, candidates, sidelink)

    def spanning_trees(self, chosen: list[int], candidates: list[Candidate], weight: str
                       ) -> dict[int, TreeNode]:
        """Fed-Span's trees for the chosen clients over the live graph (sidelinks and uplinks)."""
        s, sidelink = self.settings, self.ports.sidelink
        # spanning trees validate only with a radio and its sidelink
        assert s.sidelink_tx_power_dbm is not None and s.uplink_tx_power_dbm is not None
        assert sidelink is not None
        graph = connectivity_graph(chosen, candidates, sidelink, dbm_to_w(s.sidelink_tx_power_dbm),
                                   dbm_to_w(s.uplink_tx_power_dbm))
        nodes = spanning_trees(self.env, graph, candidates, EDGE_WEIGHT[weight])
        self.tree_stats.add(graph, nodes)
        return nodes

    def _aggregate_bytes(self, clients: list[int]) -> int:
        return self.cost.union_bytes([self.datasets[i] for i in clients])

    def train(self, arrivals: list[tuple[Attempt, State]], seed: int) -> list[TrainedUpdate]:
        """Train completed updates (in the order given) and take what their clients report."""
        return self.train_later(arrivals, seed).result()

    def train_later(self, arrivals: list[tuple[Attempt, State]], seed: int
                    ) -> Deferred[list[TrainedUpdate]]:
        """``train``, but with ``overlap`` the updates may still be training when this returns
        (``deferred.py``): what the clients report (their loss) comes with the updates."""
        arrivals = [(a, resolved(start)) for a, start in arrivals]  # the previous round's, trained
        jobs = [TrainJob(a.client, start, seed, a.tasks, a.modalities, self.anchors.get(a.client))
                if self.drift is not None else TrainJob(a.client, start, seed) for a, start in arrivals]
        if self.overlap:
            waiting = self.trainer.submit(jobs)
        else:
            driver = self.trainer.driver
            updates = (self.journal.answer(jobs, self._balancers(), self._update_weights(jobs),
                                           {j.client: driver.trained_modules(j) for j in jobs})
                       if self.journal else None)
            if updates is None:
                updates = self.trainer.train(jobs)
                if self.journal is not None:
                    self.journal.record(jobs, updates, self._balancers())
            waiting = lambda: updates  # noqa: E731 - the updates are here already
        for attempt, _ in arrivals:
            client = self.registry.clients[attempt.client]
            client.rounds_completed += 1
            client.last_round = attempt.round

        def received() -> list[TrainedUpdate]:
            updates = waiting()
            for (attempt, start), update in zip(arrivals, updates, strict=True):
                update.modules = compress(update.modules, start, self.cfg.compression)
                loss = update.stats.last_epoch_loss  # Oort uses the loss a client reports
                client = self.registry.clients[attempt.client]
                client.last_loss = float(sum(loss.values()) / max(len(loss), 1))
            return updates

        return Deferred(received) if self.overlap else Deferred.ready(received())

    def _balancers(self) -> dict:
        """Every client's gradient balancer (created on first use), wherever training runs."""
        return _AllBalancers(self.trainer.driver)

    def evaluate(self) -> None:
        self.scored_version = self.version
        self.evaluation(self.global_state, self.round, self.env.now)

    def _periodic_evaluation(self, period: float):
        """Evaluate every ``period`` simulated seconds unless a round just did."""
        while True:
            yield self.env.timeout(period)
            if self.env.now - self.evaluation.last_t >= period - 1e-9:
                self.evaluate()

    # ---- run outputs ---------------------------------------------------------------------------
    def progress_fields(self) -> dict[str, str]:
        self.evaluation.poll()
        return {"round": str(self.round), "participants": str(self.participants),
                "eval": self.evaluation.last_line}

    def finish(self) -> None:
        """Keep the final global model: a later run can start from it (learning.init_modules)."""
        self.global_state = resolved(self.global_state)  # the last round's training, done
        check_finite(self.global_state, self.version, self.round)
        if self.version != self.scored_version:  # the final model is always scored
            self.evaluate()
        torch.save(self.global_state, self.run_dir / "global_modules.pt")
        self.lookup = self._lookup_later()
        self.evaluation.drain()
        if self.cfg.personalisation is not None:  # per-client rows, metrics still open
            self.personalisation = personalise(self)
        if self.journal is not None:  # the run is whole: nothing left to resume
            self.journal.remove()
        self.trainer.close()  # workers, Ray actors

    def _lookup_baseline(self) -> dict[str, dict[str, float]]:
        """The model-free baseline on the same held-out frames, fitted on every client's frames."""
        held = [copy.copy(d) for d in self.datasets]  # every task each client holds, whatever drift
        for view, data in zip(held, self.datasets, strict=True):
            view.tasks, view.modalities = list(data.shard.tasks), list(data.shard.modalities)
        training = (batch for data in held for batch in data.ordered_batches(32))
        baseline = LookupBaseline.fit(training, self.geometry)
        return baseline.evaluate(self.evaluation.batches, self._builtin_tasks(), self.cfg.evaluation)

    def _update_weights(self, jobs: list[TrainJob]) -> dict[int, float]:
        """What each job's update weighs when trained: its client's samples times the epochs."""
        return {j.client: float(len(self.datasets[j.client]) * self.cfg.local.epochs) for j in jobs}

    def _builtin_tasks(self) -> list[str]:
        """The evaluated tasks the lookup baseline and the support count know (not a user's)."""
        return [t for t in self.evaluation.tasks if t in TASK_INFO]

    def summary(self) -> dict[str, Any]:
        return {"rounds": self.round, "model_version": self.version, "cost": self.cost.summary(),
                "lookup_baseline": self.lookup if self.lookup is not None else self._lookup_baseline(),
                "trainer": {**self.trainer.mode, "overlap": self.overlap},
                "precision": self.precision.summary(),
                "init_modules_skipped": self.init_skipped,
                "clients_present": len(self.registry.present()),
                "samples_decoded": self.cache.decoded,
                "evaluation_wall_s": self.evaluation.wall_s,
                "evaluation_busy_s": round(self.evaluation.busy_s, 3),
                "heldout_support": heldout_support(
                    self.evaluation.batches, self._builtin_tasks(), self.cfg.evaluation,
                    self.model.image_size, self.cfg.model.bev_range_m),
                **({"relay": self.relay.summary()} if self.relay is not None else {}),
                **({"personalisation": self.personalisation} if self.personalisation else {}),
                **({"hops": self.hops.summary()} if self.hops is not None else {}),
                **({"drift": self.drift.summary()} if self.drift is not None else {}),
                **({"spanning_trees": self.tree_stats.summary()} if self.tree_stats.rounds else {}),
                **({"journal": {"calls": self.journal.calls, "replayed": self.journal.replayed}}
                   if self.journal is not None else {})}


class TrainingDiverged(RunFailedError):
    """The global model holds values that are not numbers: the run's learning results are void."""


def check_finite(state: State, version: int, round_: int) -> None:
    """A global model with NaN or infinite values fails the run (never a complete run whose
    metrics score a broken model)."""
    broken = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        raise TrainingDiverged(
            f"training diverged: {len(broken)} of {len(state)} global-model tensors hold NaN or "
            f"infinite values at model version {version} (round {round_}), e.g. {broken[0]}; a "
            "smaller learning.local.lr, or learning.init_modules of sane values")


class _AllBalancers(dict):
    """A view of the trainer's balancers that creates a client's on first access."""

    def __init__(self, trainer: Any):
        super().__init__(trainer.balancers)
        self._trainer = trainer

    def __missing__(self, client: int):
        return self._trainer.balancer(client)
