"""Client datasets: a torch Dataset per client over its frames, with a cache of built samples so
that repeated local updates (one per round) do not decode JPEGs and range images again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from cosim.cache import cached_folder, content_key
from cosim.learning.data.partition import ClientShard, FrameRef
from cosim.learning.data.samples import build_sample, collate
from cosim.learning.data.scene import GENERATOR_VERSION
from cosim.learning.data.synth import SynthConfig, generate
from cosim.learning.data.waymo_v2 import SegmentReader, WaymoV2Dataset
from cosim.learning.grid import Geometry
from cosim.names import INPUT_MODALITY
from cosim.scenario import DataConfig


class SampleCache:
    """Built samples by frame, least recently used dropped first; shared by all clients."""

    def __init__(self, dataset: WaymoV2Dataset, geometry: Geometry, capacity: int, pin: bool = False):
        self.dataset, self.geometry, self.capacity = dataset, geometry, capacity
        self.pin = pin  # page-locked tensors: host-to-GPU copies run without blocking
        self._readers: dict[str, SegmentReader] = {}
        self._items: OrderedDict[FrameRef, tuple[dict, dict]] = OrderedDict()
        self._lock = threading.Lock()
        self._expected: dict[str, set[int]] = {}
        self.decoded = 0

    def expect(self, refs: list[FrameRef]) -> None:
        """Frames a client (or the held-out set) will ask for: a miss decodes the other expected
        frames of its segment along with it, while they fit the cache without evicting."""
        for segment, ts in refs:
            self._expected.setdefault(segment, set()).add(ts)

    def get(self, ref: FrameRef) -> tuple[dict, dict]:
        # training threads (learning.local.backend: threads) share the cache: the bookkeeping is
        # locked, decoding is not (two threads may decode one frame; both get the same sample)
        with self._lock:
            if ref in self._items:
                self._items.move_to_end(ref)
                return self._items[ref]
            segment, ts = ref
            if segment not in self._readers:
                self._readers[segment] = self.dataset.segment(segment)
            reader = self._readers[segment]
            wanted = [ts] + self._companions(segment, ts)
        samples = [build_sample(frame, self.geometry) for frame in reader.frames(wanted)]
        if self.pin:
            samples = [_pinned(sample) for sample in samples]
        with self._lock:
            self.decoded += len(samples)
            if self.capacity:
                for t, sample in zip(wanted, samples, strict=True):
                    self._items[(segment, t)] = sample
                self._items.move_to_end(ref)
                while len(self._items) > self.capacity:
                    self._items.popitem(last=False)
        return samples[0]

    def _companions(self, segment: str, ts: int) -> list[int]:
        """The segment's other expected frames not yet built, when they fit the free room."""
        rest = sorted(t for t in self._expected.get(segment, ())
                      if t != ts and (segment, t) not in self._items)
        return rest if len(self._items) + 1 + len(rest) <= self.capacity else []


def _pinned(tree):
    if isinstance(tree, torch.Tensor):
        return tree.pin_memory()
    if isinstance(tree, dict):
        return {k: _pinned(v) for k, v in tree.items()}
    if isinstance(tree, tuple):
        return tuple(_pinned(v) for v in tree)
    return tree


class ClientDataset(Dataset):
    """One client's frames; a sample carries only its modalities and tasks."""

    def __init__(self, shard: ClientShard, cache: SampleCache):
        self.shard, self.cache = shard, cache
        cache.expect(list(shard.frames))
        self.tasks, self.modalities = list(shard.tasks), list(shard.modalities)

    def __len__(self) -> int:
        return len(self.shard.frames)

    def __getitem__(self, i: int) -> tuple[dict, dict]:
        inputs, targets = self.cache.get(self.shard.frames[i])
        keep = {k: v for k, v in inputs.items()
                if INPUT_MODALITY.get(k) in self.modalities or k == "sequence"}
        return keep, {t: targets[t] for t in self.tasks}

    def frame_key(self, i: int) -> FrameRef:
        """Which frame sample ``i`` is (what the batched trainer caches frozen features by)."""
        return self.shard.frames[i]

    def index_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[list[int]]:
        """An epoch's shuffled sample indices, batch by batch (a DataLoader's order)."""
        # DataLoader samples any sized sequence (here the indices themselves); its stub asks for a Dataset
        for idx in DataLoader(range(len(self)), batch_size=batch_size,  # type: ignore[arg-type]
                              shuffle=True, generator=generator):
            yield idx.tolist()

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[tuple[dict, dict]]:
        """Shuffled batches (the ``ClientData`` protocol of ``local_update``)."""
        for idx in self.index_batches(batch_size, generator):
            inputs, targets = collate([self[i] for i in idx])
            inputs.pop("sequence", None)
            yield inputs, targets

    def ordered_batches(self, batch_size: int) -> list[tuple[dict, dict]]:
        """Frames in order (tracking needs sequences in order), for evaluation."""
        return list(DataLoader(self, batch_size=batch_size, shuffle=False, collate_fn=collate))


def open_dataset(cfg: DataConfig):
    """The scenario's dataset reader (v2 Parquet components or v1 TFRecords)."""
    if cfg.root is not None and cfg.format == "v1":
        from cosim.learning.data.waymo_v1 import WaymoV1Dataset

        return WaymoV1Dataset(cfg.root)
    return WaymoV2Dataset(dataset_root(cfg))


def dataset_root(cfg: DataConfig) -> Path:
    """The Waymo v2 folder to read: the scenario's, or the cached synthetic one (built once)."""
    if cfg.root is not None:
        return cfg.root
    synth = SynthConfig(segments=cfg.synthetic.segments, frames=cfg.synthetic.frames,
                        seed=cfg.synthetic.seed, hz=cfg.synthetic.hz)
    key = content_key(["synth", str(GENERATOR_VERSION), repr(synth)])
    return cached_folder("data", key, lambda folder: generate(folder, synth))
