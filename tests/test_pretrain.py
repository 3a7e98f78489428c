"""Synthetic scenes, their camera rendering, and the foundation pre-training built from them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cosim.learning.data.raycast import cast
from cosim.learning.data.render import camera_rays, render_camera
from cosim.learning.data.scene import make_segment
from cosim.learning.pretrain import PretrainConfig, pretrain


def test_segments_are_deterministic_and_agents_move():
    a, b = make_segment("x", 7), make_segment("x", 7)
    assert np.array_equal(a.agents, b.agents) and a.style == b.style
    boxes0, _, ids0 = a.frame(0)
    boxes9, _, ids9 = a.frame(9)
    assert np.array_equal(ids0, ids9)  # instance ids are stable over frames
    assert not np.allclose(boxes0[:, :2], boxes9[:, :2])


def test_culling_does_not_change_what_rays_hit():
    seg = make_segment("c", 3)
    boxes, _, _ = seg.frame(0)
    dirs = camera_rays(48, 32)
    origin = np.array([0.0, 0.0, 1.6])
    d1, h1, n1 = cast(origin, dirs, boxes, 150.0)
    # a set of rays with no common direction disables the cone test: only range culling
    d2, h2, _ = cast(origin, np.concatenate([dirs, -dirs]), boxes, 150.0)
    assert np.array_equal(h1, h2[: len(dirs)]) and np.allclose(d1, d2[: len(dirs)])


def test_camera_labels_match_the_geometry():
    seg = make_segment("r", 11)
    frame = render_camera(seg, 0, 96, 64, np.random.default_rng(0))
    assert frame.image.shape == (64, 96, 3) and frame.image.dtype == np.uint8
    assert (frame.semantic == 24).any() or np.isinf(frame.depth).sum() == 0  # sky where nothing
    assert np.isinf(frame.depth[frame.semantic == 24]).all()
    for box, obj in zip(frame.boxes, frame.box_ids, strict=True):
        x1, y1, x2, y2 = box.astype(int)
        assert (frame.instance[y1:y2, x1:x2] == obj).any()
        assert not (frame.instance[:, :x1] == obj).any() and not (frame.instance[:, x2:] == obj).any()


@pytest.mark.slow
def test_pretraining_learns_retrieval_and_writes_a_loadable_checkpoint(tmp_path):
    from cosim.learning.backbone import load_clip

    cfg = PretrainConfig(segments=12, frames_per_segment=4, steps=30, batch_size=32)
    report = pretrain(cfg, tmp_path / "a.pt")
    assert report["last_loss"] < report["first_loss"] - 0.5
    assert report["retrieval_after"] > report["retrieval_before"]
    model = load_clip("cosim-tiny", tmp_path / "a.pt")
    pretrain(cfg, tmp_path / "b.pt")
    a, b = torch.load(tmp_path / "a.pt"), torch.load(tmp_path / "b.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)  # deterministic
    assert all(torch.equal(a[k], v) for k, v in model.state_dict().items())


def test_synthetic_checkpoint_is_built_once_then_reused():
    from cosim.learning.pretrain import ensure_pretrained

    cfg = PretrainConfig(segments=4, frames_per_segment=3, steps=3, batch_size=8, seed=9)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = ensure_pretrained(cfg)
    # building it left the caller's random state alone: a cold-cache run initialises its modules
    # exactly as a warm-cache run does
    assert torch.equal(torch.get_rng_state(), before)
    mtime = first.stat().st_mtime_ns
    again = ensure_pretrained(cfg)
    assert again == first and again.stat().st_mtime_ns == mtime  # reused, not trained again
    assert (first.parent / "report.json").exists()


def test_a_replaced_checkpoint_leaves_its_other_hard_links_as_they_were(tmp_path):
    """Written as a new file renamed into place: a run's global_modules.pt hard-linked as the
    destination keeps its bytes."""
    theirs = tmp_path / "run" / "global_modules.pt"
    theirs.parent.mkdir()
    theirs.write_bytes(b"a run's modules")
    (tmp_path / "out.pt").hardlink_to(theirs)
    pretrain(PretrainConfig(segments=8, frames_per_segment=2, steps=2, batch_size=4), tmp_path / "out.pt")
    assert theirs.read_bytes() == b"a run's modules"
    assert torch.load(tmp_path / "out.pt", weights_only=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.pt", "run"]
