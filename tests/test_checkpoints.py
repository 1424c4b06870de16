"""Checkpoints read back without pickle: every file hashed as written, DeepSpeed's pickles never loaded."""

from __future__ import annotations

import json
import pickle

import pytest

from clinitune.errors import ClinituneError
from clinitune.layout import RunDir
from clinitune.train import checkpoints
from clinitune.train.distributed import Dist


class Boom:
    """Unpickling this writes a file: the proof that a pickle was loaded."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def checkpoint(tmp_path):
    ckpt = tmp_path / "run" / "checkpoint-3"
    ckpt.mkdir(parents=True)
    (ckpt / "state.json").write_text(json.dumps({"step": 3}))
    (ckpt / "rng.json").write_text(json.dumps({"ranks": []}))
    sums = {p.name: checkpoints.sha256_file(p) for p in ckpt.iterdir()}
    (ckpt / checkpoints.CHECKSUMS).write_text(json.dumps(sums))
    return ckpt


def test_checksums_cover_every_file_under_the_checkpoint(tmp_path):
    ckpt = checkpoint(tmp_path)
    assert checkpoints.damage(ckpt) is None
    (ckpt / "deepspeed").mkdir()
    (ckpt / "deepspeed" / "mp_rank_00_model_states.pt").write_bytes(b"x")
    assert "deepspeed/mp_rank_00_model_states.pt was not written" in checkpoints.damage(ckpt)
    assert checkpoints.intact_checkpoint(RunDir(tmp_path / "run")) is None


@pytest.mark.parametrize("deepspeed", [None, {"zero_optimization": {"stage": 2}}])
def test_a_tampered_deepspeed_checkpoint_runs_nothing(tmp_path, deepspeed):
    ckpt = checkpoint(tmp_path)
    marker = tmp_path / "pwned"
    (ckpt / "deepspeed").mkdir()
    for name in ("mp_rank_00_model_states.pt", "bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt"):
        (ckpt / "deepspeed" / name).write_bytes(pickle.dumps(Boom(str(marker))))
    with pytest.raises(ClinituneError, match="DeepSpeed keeps its optimizer state in pickles"):
        checkpoints.restore_checkpoint(ckpt, None, None, None, None, Dist(deepspeed=deepspeed))
    assert not marker.exists()
