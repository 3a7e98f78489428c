"""A journal entry's tensors are dense, as training writes them: a sparse or meta tensor put in
an entry is damage, said in one line, never computed on."""

from __future__ import annotations

import pytest
import torch

from cosim.errors import InputError
from cosim.learning.federated.journal_checks import load_entry


def _entry(module: torch.Tensor) -> dict:
    updates = [{"client": 0, "modules": {"heads.seg3d.w": module}, "weight": 4.0,
                "stats": {}}]
    return {"keys": [[0, 1, "digest"]], "start_balancers": "b", "scenario": "s",
            "updates": updates, "balancers": {}, "seal": "checked after the tensors"}


@pytest.mark.parametrize("kind", ["sparse", "meta"])
def test_a_journal_entry_with_a_tensor_training_never_writes_is_damaged(tmp_path, kind):
    tensor = (torch.sparse_coo_tensor([[0], [0]], [1.0], (2, 2)) if kind == "sparse"
              else torch.empty(2, 2, device="meta"))
    path = tmp_path / "train-000000.pt"
    torch.save(_entry(tensor), path)
    with pytest.raises(InputError, match="not a dense tensor"):
        load_entry(path)
