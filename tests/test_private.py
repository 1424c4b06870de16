"""DP-SGD with the patient as the unit: the reported epsilon matches an independent accountant, and a
patient's examples enter a step together or not at all."""

import json

import dp_accounting
import pytest
import yaml

from clinitune.config import load_config
from clinitune.data.tokenize import Tokenized
from clinitune.errors import ClinituneError
from clinitune.eval.run import evaluate
from clinitune.train import private
from clinitune.train.loop import train


def _rows(n_patients: int, per_patient: int) -> list[dict]:
    return [
        {
            "task": "knowledge",
            "group": f"patient{p}",
            "instruction": f"State coding rule {p}-{k}.",
            "output": f"Rule {p}-{k}: code to the highest specificity.",
        }
        for p in range(n_patients)
        for k in range(per_patient)
    ]


def _independent_epsilon(sigma: float, q: float, steps: int, delta: float) -> float:
    """Google's dp_accounting, not Opacus: the same Poisson-subsampled Gaussian, composed `steps` times, over
    the RDP orders Opacus uses."""
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps
    )
    acc = dp_accounting.rdp.RdpAccountant(orders=[1 + x / 10 for x in range(1, 100)] + list(range(12, 64)))
    acc.compose(event)
    return acc.get_epsilon(delta)


def _train(tmp_path, tiny_llama, name: str, dp: bool):
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(40, 2)))
    cfg = {
        "model": {"name_or_path": str(tiny_llama)},
        "data": {"train": str(tmp_path / "train.jsonl"), "max_seq_length": 64},
        "training": {
            "output_dir": str(tmp_path / name),
            "max_steps": 6,
            "precision": "fp32",
            "early_stopping_patience": None,
            "gradient_checkpointing": False,
            "per_device_train_batch_size": 2,
        },
        "privacy": {"target_epsilon": 4.0, "patients_per_step": 4, "max_grad_norm": 0.5} if dp else {},
    }
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
    return train(load_config(tmp_path / f"{name}.yaml"), quiet=True)


def test_dp_training_reports_the_epsilon_an_independent_accountant_computes(tmp_path, tiny_llama):
    summary = _train(tmp_path, tiny_llama, "run", dp=True)
    dp = summary.privacy
    assert (dp["units"], dp["patients"], dp["sample_rate"], dp["steps_taken"], dp["delta"]) == (40, 40, 0.1, 6, 0.025)
    assert dp["unit"].startswith("patient")
    independent = _independent_epsilon(dp["noise_multiplier"], dp["sample_rate"], 6, dp["delta"])
    assert dp["epsilon_spent"] == pytest.approx(independent, rel=0.03)
    assert dp["epsilon_spent"] == pytest.approx(4.0, rel=0.03)  # the noise was chosen to meet the target


def test_a_patient_enters_a_step_whole_and_alone():
    groups = ["a", "a", "b", "c", "c", "c", "reference:icd10", "reference:icd10"]
    data = Tokenized(
        input_ids=[[10, 11], [12, 13], [20, 21], [30, 31], [32, 33], [34, 35], [90, 91], [92, 93]],
        n_prompt=[1] * 8,
        tasks=["t"] * 8,
        groups=groups,
        source=list(range(8)),
    )
    rows = private.units(data, groups, max_len=64, packing=True)
    # packing keeps each patient's examples together and apart from everyone else's
    assert {g: sorted(i for r in rs for i in r.ids) for g, rs in rows.items()} == {
        "a": [10, 11, 12, 13],
        "b": [20, 21],
        "c": [30, 31, 32, 33, 34, 35],
        "reference:icd10#6": [90, 91],  # public reference data: each example its own unit
        "reference:icd10#7": [92, 93],
    }
    draws = [private.sample(sorted(rows), 0.25) for _ in range(4000)]
    for g in rows:
        rate = sum(g in d for d in draws) / len(draws)
        assert abs(rate - 0.25) < 0.03  # Poisson sampling: each patient independently, at rate q
    assert len({tuple(d) for d in draws}) > 20  # from the OS's CSPRNG: no seed makes two runs draw alike


def test_dp_noise_is_unpredictable_and_has_the_planned_spread(monkeypatch):
    """Two steps with identical inputs (the same training.seed, the same data) add different noise, of standard
    deviation sigma * C, clipped gradients being zero here."""
    import torch

    from clinitune.data.tokenize import Row
    from clinitune.models.adapt import Plan

    weight = torch.nn.Parameter(torch.zeros(64, 64))
    monkeypatch.setattr(private, "collate", lambda rows, pad: rows)
    root = lambda batch: ((weight * 0).sum(), None)  # noqa: E731  (a zero gradient: what is left is the noise)
    dp = private.DPPlan(
        4.0,
        1e-3,
        noise_multiplier=1.3,
        sample_rate=1.0,
        steps=1,
        max_grad_norm=0.5,
        accountant="rdp",
        units=4,
        patients=4,
    )
    rows = {g: [Row(ids=[1, 2], labels=[1, 2], positions=[0, 1])] for g in "abcd"}
    plan = Plan(device="cpu", weight_dtype=torch.float32, compute_dtype=None, four_bit=False)
    grads = []
    for _ in range(2):
        private.step(root, [weight], plan, 0, rows, dp, batch_size=1)
        grads.append(weight.grad.clone() * dp.sample_rate * dp.units)  # undo the division by the expected count
    assert not torch.equal(grads[0], grads[1])
    for g in grads:
        assert abs(float(g.std()) - 1.3 * 0.5) < 0.03 and abs(float(g.mean())) < 0.03


def test_dp_refuses_what_it_cannot_account_for(tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"privacy": {"target_epsilon": 4}, "training": {"max_minutes": 5}}))
    with pytest.raises(ClinituneError, match="training.max_steps instead"):
        private.refuse_unsupported(load_config(tmp_path / "c.yaml"), world=1)
    with pytest.raises(ClinituneError, match="one process"):
        private.refuse_unsupported(load_config(None, ["privacy.target_epsilon=4"]), world=2)


def test_eval_shows_a_dp_run_beside_a_run_without_dp(tmp_path, tiny_llama):
    """`eval --run DP --compare PLAIN`: both models on the same examples, the paired difference per task, and
    each run's DP status and privacy probes side by side."""
    _train(tmp_path, tiny_llama, "dp", dp=True)
    _train(tmp_path, tiny_llama, "plain", dp=False)
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text((tmp_path / "train.jsonl").read_text())  # the few-shot pool and members
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(50, 1)[40:]))
    res = evaluate(
        data=data / "test.jsonl", out=tmp_path / "e", run=tmp_path / "dp", compare=tmp_path / "plain", quiet=True
    )
    assert (
        res.candidates["compared"]["tasks"]["knowledge"]["n"]
        == res.candidates["fine_tuned"]["tasks"]["knowledge"]["n"]
        == 10
    )
    assert res.compared["dp"]["fine_tuned"]["epsilon_spent"] == pytest.approx(4.0, rel=0.03)
    assert res.compared["dp"]["compared"] is None
    for probes in (res.privacy, res.compared["privacy"]):
        assert probes["membership_inference"]["n_members"] == probes["membership_inference"]["n_nonmembers"] == 10
    assert all("vs_compared" in r for r in res.comparison)
    report = (tmp_path / "e" / "report.md").read_text()
    assert "## Beside the compared run" in report and "| compared run | no DP |" in report
    assert "| fine-tuned | DP-SGD: epsilon " in report and "(target 4)" in report

    summary = json.loads((tmp_path / "plain" / "train_summary.json").read_text())
    summary["base_model"] = "another-model"
    (tmp_path / "plain" / "train_summary.json").write_text(json.dumps(summary))
    with pytest.raises(ClinituneError, match="compare runs of one base model"):
        evaluate(data=data / "test.jsonl", out=tmp_path / "e2", run=tmp_path / "dp", compare=tmp_path / "plain")


def test_each_patient_gradient_is_clipped_to_c_before_the_sum(monkeypatch):
    """A patient whose gradient is huge moves the model no more than C: per-patient clipping, then the mean."""
    import torch

    from clinitune.data.tokenize import Row
    from clinitune.models.adapt import Plan

    weight = torch.nn.Parameter(torch.zeros(8, 8))
    monkeypatch.setattr(private, "collate", lambda rows, pad: rows)
    # patient "big" pushes with 1000x the force of the others; each patient's gradient is (scale / tokens) * ones
    scale = {"big": 1000.0, "a": 0.001, "b": 0.001, "c": 0.001}
    root = lambda rows: ((weight * rows[0].scale).sum(), None)  # noqa: E731
    dp = private.DPPlan(4.0, 1e-3, noise_multiplier=0.0, sample_rate=1.0, steps=1, max_grad_norm=0.5,
                        accountant="rdp", units=4, patients=4)  # fmt: skip
    rows = {}
    for g, s in scale.items():
        r = Row(ids=[1, 2], labels=[1, 2], positions=[0, 1])
        r.scale = s
        rows[g] = [r]
    plan = Plan(device="cpu", weight_dtype=torch.float32, compute_dtype=None, four_bit=False)
    private.step(root, [weight], plan, 0, rows, dp, batch_size=1)
    tokens = rows["big"][0].response_tokens
    unclipped = {g: s / tokens * 8 for g, s in scale.items()}  # the Frobenius norm of (s / tokens) * ones(8, 8)
    expected_sum = sum(min(1.0, 0.5 / n) * n for n in unclipped.values()) / 8  # per element, after clipping
    got = weight.grad * dp.sample_rate * dp.units
    assert torch.allclose(got, torch.full((8, 8), expected_sum), rtol=1e-4)
    small = sum(n for g, n in unclipped.items() if g != "big")
    assert float(got.norm()) <= 0.5 + small + 1e-5  # the big patient contributed at most C
