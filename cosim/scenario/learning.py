"""The learning section: the model, its PEFT modules, local training, data and evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    NonNegativeInt,
    PositiveInt,
    ValidationInfo,
    model_validator,
)

from cosim.names import PEFT_METHODS, STACKABLE_PEFT, TASKS, TRAINER_BACKENDS
from cosim.scenario.base import (
    SEED_MAX,
    FieldError,
    InputDir,
    InputFile,
    StrictModel,
    extension_name,
    resolve_input_file,
)
from cosim.scenario.drift import DriftConfig

if TYPE_CHECKING:
    PeftMethodName = str
    TrainerBackendName = str
    TaskName = str
else:
    PeftMethodName = extension_name("PEFT method", PEFT_METHODS)
    TrainerBackendName = extension_name("trainer backend", TRAINER_BACKENDS)
    TaskName = extension_name("task", TASKS)

SYNTHETIC_CHECKPOINT = "synthetic"


def _resolve_checkpoint(value: str | None, info: ValidationInfo) -> str | None:
    """A local weights file, or ``synthetic`` (cosim's own pre-training, built once and cached);
    any other bare name such as ``openai`` is a hub tag, which cannot be used here."""
    if value is None or value == SYNTHETIC_CHECKPOINT:
        return value
    text = str(value)
    if "/" not in text and "." not in text:
        raise ValueError(
            f"{text!r} is an open_clip hub tag and nothing is downloaded here: fetch the weights "
            "on a machine with internet (open_clip.create_model(name, pretrained=tag) caches them) "
            "and set this to the local .bin/.pt/.safetensors file"
        )
    return str(resolve_input_file(Path(text), info))  # the field is text: dumps stay warning-free


def _all_branches() -> list[Literal["image", "lidar", "text"]]:
    return ["image", "lidar", "text"]


class PeftConfig(StrictModel):
    """Which parameter-efficient modules each tower gets, and their sizes."""

    method: PeftMethodName = "adapter"
    branches: list[Literal["image", "lidar", "text"]] = Field(
        default_factory=_all_branches)
    last_blocks: PositiveInt = Field(2, le=1000)  # PEFT in the upper blocks (the authors' choice)
    bottleneck: PositiveInt = Field(32, le=65_536)
    scale: float = Field(0.1, ge=-1000.0, le=1000.0)
    lora_rank: PositiveInt = Field(4, le=65_536)
    lora_alpha: float = Field(8.0, gt=0.0, le=1e6)
    prompt_tokens: PositiveInt = Field(8, le=65_536)
    experts: PositiveInt = Field(4, le=1024)
    top_k: PositiveInt = Field(1, le=1024)
    balance_weight: float = Field(0.01, ge=0.0, le=1e6)

    @model_validator(mode="after")
    def _top_k(self) -> PeftConfig:
        if self.top_k > self.experts:
            raise ValueError("top_k must not exceed experts")
        return self


class ModelConfig(StrictModel):
    """The multi-modal multi-task CLIP model every client fine-tunes."""

    name: str = "cosim-tiny"  # an open_clip configuration
    checkpoint: Annotated[str | None, AfterValidator(_resolve_checkpoint)] = None
    peft: PeftConfig = Field(default_factory=PeftConfig)
    task_adapter: bool = True  # the shared task adapter of FedAdapt
    task_adapter_bottleneck: PositiveInt = Field(64, le=65_536)
    classifier: Literal["linear", "text"] = "linear"  # "text": cosine with class prompts
    # a built-in task, or a task of the user's own: module:NAME naming its TaskSpec
    tasks: list[TaskName] = Field(default_factory=lambda: list(TASKS))
    head_channels: PositiveInt = Field(64, le=65_536)
    # The task's input view, pooled to the output grid, joins the head before its last layer: a
    # patch token (8 px in cosim-tiny) holds no detail finer than itself.
    input_skip: bool = True
    # the 3D detection grid covers +-range around the ego car
    bev_range_m: float = Field(40.0, gt=0.0, le=10_000.0)


class BalancingConfig(StrictModel):
    """How per-task gradients of the shared modules are combined."""

    method: Literal["sum", "gradnorm", "cagrad"] = "sum"
    gradnorm_alpha: float = Field(1.5, ge=0.0, le=1e6)  # the restoring force towards equal training rates
    # Adam's learning rate on the task weights; weights, initial losses and Adam's moments are
    # kept per client across its rounds (GradNorm's weights are state of the training run).
    gradnorm_lr: float = Field(0.025, gt=0.0, le=1e6)
    cagrad_c: float = Field(0.4, ge=0.0, le=1e6)  # the radius of the ball around the mean gradient


class LocalTrainingConfig(StrictModel):
    """One client's local update: epochs over its data with a fresh optimiser."""

    epochs: PositiveInt = Field(1, le=100_000)
    batch_size: PositiveInt = Field(8, le=1_000_000)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0.0, le=1e6)
    weight_decay: float = Field(0.0, ge=0.0, le=1e6)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)  # sgd only
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Completed updates of a round train together, in passes of at most this many clients over
    # the frozen backbone (cosim/learning/batched.py), split into passes of near-equal size; 1
    # trains them one after another. PEFT methods that cannot stack (prompt, moe_adapter) train
    # one after another, as run.json says.
    clients_per_pass: PositiveInt = Field(20, le=100_000)
    # Where the passes run: in this process; on threads of this process ("threads": a model
    # replica per thread sharing the frozen backbone, the sample and prefix caches; a round trains
    # as one pass per worker, or in this thread when it has fewer clients than workers);
    # on worker processes of this machine ("processes", the passes of a round in parallel); or on
    # Ray actors (pip install -e ".[ray]"), one per GPU of the cluster. The simulated clock stays
    # here. Which worker trains a pass does not change its result: a run equals a local one with
    # the same ``threads`` and passes (for "threads", the same ``workers`` too, which sets them).
    backend: TrainerBackendName = "local"
    # threads, processes: None = one per core; ray: None = one per GPU (or 1)
    workers: PositiveInt | None = Field(None, le=1024)
    ray_address: str | None = None  # an existing cluster ("auto", "ray://host:10001"); None: start one
    # torch threads of the run's own thread and of every process or worker thread that trains.
    # Results depend on it at float rounding level, so it is fixed here, not taken from the
    # machine: a run gives the same bytes whatever the cores, OMP_NUM_THREADS or `cosim compare
    # --jobs` (run.json records it). None: torch's default, one per core ("threads": cores /
    # workers), results then depend on the machine. With workers, 1 each is the fast choice.
    threads: PositiveInt | None = Field(1, le=1024)
    # Synchronous FedAvg on the "threads" backend: a round's updates train on the workers while
    # this thread simulates the next round's radio; the global state is averaged when first
    # needed (the next round's training, an evaluation, the run's end). Traces are bit-identical
    # to false (train at the round's end, then go on). Off by itself where something reads the
    # updates sooner: a policy that reads the losses clients report (Oort), output.checkpoint's
    # journal, learning.drift.
    overlap: bool = True

    @model_validator(mode="before")
    @classmethod
    def _bf16_moved(cls, data):
        if isinstance(data, dict) and "bf16" in data:
            if data["bf16"] is False:  # what run.json of earlier runs holds: fp32, as before
                return {k: v for k, v in data.items() if k != "bf16"}
            raise FieldError("bf16", "is now learning.precision (fp32 | bf16 | auto), for CPUs too")
        return data


class SyntheticDataConfig(StrictModel):
    """Synthetic segments in the Waymo v2 layout, generated once per setting and cached."""

    segments: PositiveInt = 24
    frames: PositiveInt = 40
    seed: int = Field(0, ge=0, le=SEED_MAX)
    hz: float = Field(2.0, gt=0.0, le=1000.0)  # frame rate: 40 frames at 2 Hz span a Waymo segment's 20 s


class DataConfig(StrictModel):
    """Where client data comes from and how it is split among clients."""

    # The data stream of randomness: which segments each client holds and which are held out
    # (none: the scenario's seed), so a compare can keep the data fixed while connectivity varies.
    seed: int | None = Field(None, ge=0, le=SEED_MAX)
    root: InputDir | None = None  # a Waymo folder; none: synthetic data (generated, cached)
    format: Literal["v2", "v1"] = "v2"  # v2: Parquet components; v1: *.tfrecord segments
    synthetic: SyntheticDataConfig = Field(default_factory=SyntheticDataConfig)
    partition: Literal["segment", "dirichlet"] = "segment"  # one segment per client (paper)
    dirichlet_alpha: float = Field(0.5, gt=0.0, le=1e6)  # over cities, for partition: dirichlet
    clients: PositiveInt = Field(20, le=100_000)
    # never given to a client; the global model is scored on them (none: nothing to score)
    heldout_segments: PositiveInt = Field(4, le=1_000_000)
    frame_stride: PositiveInt = Field(1, le=1_000_000)
    # Every n-th of those frames in a held-out segment: more held-out drives at one evaluation
    # cost, so the score rests on more, and less alike, scenes (a clip's next frame is half a
    # second later).
    heldout_frame_stride: PositiveInt = Field(1, le=1_000_000)
    no_lidar_share: float = Field(0.0, ge=0.0, le=1.0)  # clients without a LiDAR
    camera_tasks_only_share: float = Field(0.0, ge=0.0, le=1.0)  # clients with 2D tasks only
    cache_frames: NonNegativeInt = Field(4096, le=100_000_000)  # decoded samples kept in memory


class EvaluationConfig(StrictModel):
    """How the global model is scored on held-out data."""

    # 2D boxes lower than this share of the image height, or narrower than this share of its
    # width, are "don't care" (neither missed nor matched), as KITTI's minimum heights: squeezed
    # into the tiny model's 64 x 64 px input, a pedestrian 20 m ahead is 1.4 px wide. The
    # defaults: 4 px high and 2 px wide at 64 px, one cell of the 2D heads' output grid.
    det2d_min_height: float = Field(0.0625, ge=0.0, lt=1.0)
    det2d_min_width: float = Field(0.03125, ge=0.0, lt=1.0)
    # 3D detection also gets nuScenes-style AP by BEV centre distance at these thresholds.
    det3d_center_thresholds_m: list[Annotated[float, Field(gt=0.0, le=10_000.0)]] = Field(
        default_factory=lambda: [0.5, 1.0, 2.0, 4.0], min_length=1)
    # mypy: Literal[...] of a names.py tuple is read by pydantic, not expressible to mypy (valid-type)
    tasks: list[TaskName] | None = None  # none: every task
    # Score on a thread of its own (one torch thread, a replica of the model) while the run goes
    # on; the metrics rows keep their order. Scores can differ from the run thread's at float
    # rounding (another thread count).
    background: bool = False


class DeployedModelConfig(StrictModel):
    """The model the fleet would run: a round's system cost (FLOPs of local training, bytes on
    the air) is this model's, built with the trained model's PEFT method, branches and heads on
    another open_clip configuration and counted on the meta device; the trained model (a small
    surrogate on a CPU) gives the learning."""

    name: str = "ViT-B-16"  # open_clip configuration (its own image size: 224 px for ViT-B-16)
    # Frames per second of driving its clients train on: a client's data spans
    # (frames x frame_stride / the data's rate) seconds of driving, every frame of which counts.
    frame_hz: float = Field(10.0, gt=0.0, le=10_000.0)  # Waymo's perception segments: 20 s at ~10 Hz


def _both_personalisations() -> list[Literal["finetune", "tap"]]:
    return ["finetune", "tap"]


class PersonalisationConfig(StrictModel):
    """Per-client evaluation after the run: the final global model against personalised ones on a
    validation share of each client's own frames (cosim/learning/federated/personalisation.py)."""

    # finetune: local fine-tune from the global modules; tap: TAP's selective replacement between
    # that fine-tune and the global model (its candidates), module group by module group.
    methods: list[Literal["finetune", "tap"]] = Field(
        default_factory=_both_personalisations, min_length=1)
    local_epochs: NonNegativeInt = Field(1, le=100_000)  # fine-tune epochs (0: the global model)
    # The last frames of each client's drive are its validation frames: at least one, and at
    # least one left to fine-tune on (clients with fewer than two frames are left out).
    validation_share: float = Field(0.25, gt=0.0, lt=1.0)
    # TAP takes a task's modules from the global model only when the global model's validation
    # loss on that task plus this margin is below the personalised one's (TAP's code: 0.01).
    tap_margin: float = Field(0.01, ge=0.0, le=1e6)
    # bound: clients whose partition was ever carried by a vehicle (those in the federation);
    # all: every partition, including ones no vehicle ever carried.
    clients: Literal["bound", "all"] = "bound"
    at: Literal["end"] = "end"  # after the run ends (the only point so far)

    @model_validator(mode="after")
    def _methods_once(self) -> PersonalisationConfig:
        if len(set(self.methods)) != len(self.methods):
            raise FieldError("methods", f"each method once (got {self.methods})")
        return self


class LearningConfig(StrictModel):
    """The federated trainer: the model, its data, local training and gradient balancing."""

    enabled: bool = True
    # The training stream of randomness: module initialisation, batch order, augmentation and
    # every round's draws (none: the scenario's seed).
    seed: int | None = Field(None, ge=0, le=SEED_MAX)
    # What training, evaluation and personalisation compute in (cosim/learning/precision.py):
    # fp32; bf16, mixed precision on the device's bfloat16 matrix units (refused where it has
    # none); auto, bf16 where the device has them, else fp32 (run.json says which ran and why).
    precision: Literal["fp32", "bf16", "auto"] = "fp32"
    model: ModelConfig = Field(default_factory=ModelConfig)
    deployed_model: DeployedModelConfig | None = None  # none: the trained model's own cost
    # Uploaded modules: fp32 as trained, fp16, or int8 (the update from the downloaded state,
    # per-tensor symmetric scale); the values the server aggregates and the bytes both change.
    compression: Literal["none", "fp16", "int8"] = "none"
    balancing: BalancingConfig = Field(default_factory=BalancingConfig)
    local: LocalTrainingConfig = Field(default_factory=LocalTrainingConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    # The starting global model: a run's global_modules.pt. Modules the model lacks are skipped
    # (a shared task adapter, for a model without one); modules the file lacks keep their seeded
    # initialisation (the head of a task that arrives).
    init_modules: InputFile | None = None
    # Modules clients neither train nor upload (e.g. heads.seg3d): they still run forward, so
    # their tasks' losses keep shaping the shared modules.
    frozen_modules: list[str] = Field(default_factory=list)
    # Per-client global vs personalised metrics at the end of the run (none: not evaluated).
    personalisation: PersonalisationConfig | None = None
    # Task-mix and modality changes over the run, and a continual-learning baseline (none: the
    # clients' data asks the same all run long).
    drift: DriftConfig | None = None

    @model_validator(mode="after")
    def _threads_train_batched(self) -> LearningConfig:
        """Worker threads share the process's global RNG, which one-at-a-time training reseeds:
        they train batched passes only."""
        if self.local.backend != "threads":
            return self
        if self.local.clients_per_pass == 1:
            raise ValueError("local.backend: threads trains batched passes; clients_per_pass 1 trains "
                             "one client at a time (use backend local or processes)")
        if self.model.peft.method not in STACKABLE_PEFT:
            raise ValueError(f"local.backend: threads trains batched passes; PEFT method "
                             f"{self.model.peft.method!r} cannot batch ({', '.join(STACKABLE_PEFT)} can)")
        if self.drift is not None and self.drift.continual == "l2":
            raise ValueError("local.backend: threads trains batched passes; drift.continual: l2 trains "
                             "one client at a time")
        return self

    @model_validator(mode="after")
    def _drift_clients_exist(self) -> LearningConfig:
        """A drift event's clients are data partitions, 0 to data.clients - 1: another number
        would change nobody, silently."""
        for i, event in enumerate(self.drift.events if self.drift is not None else []):
            wrong = [c for c in event.clients or [] if not 0 <= c < self.data.clients]
            if wrong:
                raise ValueError(f"drift.events.{i}.clients: {wrong[0]} is no client (data.clients "
                                 f"is {self.data.clients}: 0 to {self.data.clients - 1})")
        return self

    @model_validator(mode="after")
    def _frozen_are_modules(self) -> LearningConfig:
        known = ("task_adapter", *(f"heads.{t}" for t in TASKS))
        for name in self.frozen_modules:
            if name not in known and not name.startswith("peft."):
                raise ValueError(f"frozen_modules: unknown module {name!r} (task_adapter, "
                                 "heads.<task> or peft.<branch>.<module>)")
        return self


