"""Direct tests of small modules the end-to-end tests only pass through: the name rules' word classes and cues,
the optimizer's parameter groups and the learning-rate schedules."""

import hashlib
import json

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from clinitune.config import Config
from clinitune.data.privacy.phi_names import cued, is_abbreviation, word_class
from clinitune.errors import ClinituneError
from clinitune.train.optim import lr_lambda, make_optimizer


@pytest.mark.parametrize("word", ["Metformin", "Cardiology", "Parkinson's", "Hashimoto", "table", "Babinski"])
def test_clinical_and_ordinary_words_are_not_names(word):
    assert word_class(word) in ("clinical", "eponym", "ordinary")


def test_unknown_capitalized_words_are_names_and_months_are_both():
    assert word_class("Okonkwo") == "name" and word_class("June") == "both"


def test_cues_announce_a_person_and_plain_prose_does_not():
    for text in ("Patient name: Okonkwo", "Seen by Dr. Okonkwo", "Dear Okonkwo", "My name is Okonkwo"):
        assert cued(text, text.index("Okonkwo")), text
    assert not cued("Continue metformin and recheck Okonkwo", len("Continue metformin and recheck "))


def test_abbreviations_are_not_names():
    assert is_abbreviation("CHF") and is_abbreviation("HFrEF") and is_abbreviation("QTc")
    assert not is_abbreviation("Okonkwo") and not is_abbreviation("Maria")


def test_lora_b_gets_the_loraplus_rate_and_norms_no_decay(tiny_llama):
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_llama), LoraConfig(r=4, target_modules="all-linear")
    )
    for n, p in model.named_parameters():
        if "norm" in n:
            p.requires_grad = True
    cfg = Config()
    cfg.training.learning_rate, cfg.training.weight_decay, cfg.lora.loraplus_lr_ratio = 1e-3, 0.01, 8.0
    opt = make_optimizer(cfg, model, "cpu")
    names = {id(p): n for n, p in model.named_parameters()}
    for g in opt.param_groups:
        kinds = {
            ("B" if ".lora_B." in names[id(p)] else "norm" if "norm" in names[id(p)] else "A") for p in g["params"]
        }
        assert len(kinds) == 1, kinds
        kind = kinds.pop()
        assert g["lr"] == pytest.approx(8e-3 if kind == "B" else 1e-3)
        assert g["weight_decay"] == (0.0 if kind == "norm" else 0.01)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == trainable


@pytest.mark.parametrize("kind", ["linear", "cosine", "constant", "warmup_stable_decay"])
def test_schedules_warm_up_then_end_where_they_should(kind):
    f = lr_lambda(kind, warmup=10, total=100)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert all(0.0 <= f(s) <= 1.0 for s in range(120))
    assert f(100) == (1.0 if kind == "constant" else 0.0)
    if kind == "warmup_stable_decay":
        assert f(70) == 1.0 and 0 < f(90) < 1
    if kind in ("linear", "cosine"):
        assert all(f(s) >= f(s + 1) for s in range(10, 110))


# ---------------------------------------------------------------- train/checkpoints.py


def test_checkpoint_state_round_trips_without_pickle(tmp_path):
    from clinitune.train.checkpoints import load_state, save_state

    state = {
        "state": {0: {"exp_avg": torch.arange(6.0).reshape(2, 3), "step": torch.tensor(3.0)}},  # int keys
        "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0, 1], "foreach": None, "fused": False}],
    }
    save_state(tmp_path, "optimizer", state)
    back = load_state(tmp_path, "optimizer")
    assert list(back["state"]) == [0] and back["param_groups"][0]["betas"] == (0.9, 0.999)
    assert torch.equal(back["state"][0]["exp_avg"], state["state"][0]["exp_avg"])
    assert back["param_groups"][0]["foreach"] is None and back["param_groups"][0]["params"] == [0, 1]
    assert b"\x80" not in (tmp_path / "optimizer.json").read_bytes()  # JSON, never a pickle stream
    with pytest.raises(TypeError, match="without pickle"):
        save_state(tmp_path, "bad", {"x": object()})


def test_a_damaged_checkpoint_is_named_and_passed_over(tmp_path):
    from clinitune.layout import RunDir
    from clinitune.train.checkpoints import CHECKSUMS, damage, intact_checkpoint

    run = RunDir(tmp_path / "run")
    for step in (2, 4):
        ckpt = run.path / f"checkpoint-{step}"
        ckpt.mkdir(parents=True)
        (ckpt / "state.json").write_text(json.dumps({"step": step}))  # written last: the checkpoint is complete
        sums = {"state.json": hashlib.sha256((ckpt / "state.json").read_bytes()).hexdigest()}
        (ckpt / CHECKSUMS).write_text(json.dumps(sums))
    newest = run.path / "checkpoint-4"
    assert damage(newest) is None and intact_checkpoint(run) == newest
    (newest / "state.json").write_text('{"step": 5}')
    assert damage(newest) == "state.json differs from what was written"
    assert intact_checkpoint(run) == run.path / "checkpoint-2"
    (newest / "state.json").write_text(json.dumps({"step": 4}))
    (newest / "stray.bin").write_bytes(b"x")
    assert damage(newest) == "stray.bin was not written with the checkpoint"
    (newest / CHECKSUMS).unlink()
    assert "incomplete" in damage(newest)


# ---------------------------------------------------------------- data/tables.py


def test_table_rows_become_examples_without_their_identifiers():
    from clinitune.data.records.mapping import Notes
    from clinitune.data.tables import id_like, noun_of, table_examples

    header = ["visit_id", "patient_id", "mrn", "tooth", "procedure", "fee", "visit_date"]
    rows = [
        {"visit_id": f"V{i:05d}", "patient_id": f"p{i % 3}", "mrn": f"{7000 + i}", "tooth": str(10 + i),
         "procedure": "crown" if i % 2 else "filling", "fee": f"{100 + i}.50", "visit_date": f"2024-03-{i + 1:02d}"}
        for i in range(6)
    ]  # fmt: skip
    rows.append({"visit_id": "V99999", "patient_id": "p0", "mrn": "7999"})  # nothing but identifiers
    notes = Notes()
    built, empty = table_examples(rows, header, noun_of("dental_visits"), None, notes)
    assert noun_of("dental_visits") == "dental visit" and noun_of("class") == "class"
    assert empty == [6] and [i for i, _ in built] == list(range(6))
    text = json.dumps([e.to_dict() for _, exs in built for e in exs])
    for row in rows:
        assert row["visit_id"] not in text and row["patient_id"] not in text and row["mrn"] not in text
    record = json.loads(built[1][1][1].reply)  # table_json: typed values
    assert record["tooth"] == 11 and record["fee"] == 101.5 and record["procedure"] == "crown"
    # the same patient's rows share a group; another patient's do not
    groups = {i: exs[0].group for i, exs in built}
    assert groups[0] == groups[3] and groups[0] != groups[1]
    assert "patient_id: the patient column, a hashed group only" in notes.as_dict()
    assert "left out as an identifier: visit_id" in notes.as_dict()
    assert id_like("score", ["1", "2", "3", "4", "5"], "number") is False


# ---------------------------------------------------------------- infer.py


def test_infer_screens_every_prompt_before_a_model_loads(tmp_path):
    from clinitune.config import GenerationConfig
    from clinitune.infer import read_prompts, run_file

    f = tmp_path / "prompts.jsonl"
    f.write_text('"What ICD-10 code is essential hypertension?"\n{"messages": [{"role": "user", "content": "Hi"}]}\n')
    items = read_prompts(f)
    assert [m[-1]["content"] for _, m in items] == ["What ICD-10 code is essential hypertension?", "Hi"]
    f.write_text('"ok"\n"Patient John Smith, MRN 4481920, called 555-867-5309."\n')
    with pytest.raises(ClinituneError, match=rf"{f}:2: the PHI screen found .*--allow-phi"):
        read_prompts(f)
    assert len(read_prompts(f, allow_phi=True)) == 2
    f.write_text("")
    with pytest.raises(ClinituneError, match="no prompts"):
        read_prompts(f)

    class Echo:  # a backend: what run_file asks of transformers or llama.cpp
        def chat(self, messages, gen, stream):
            return messages[-1]["content"].upper()

    out = tmp_path / "out.jsonl"
    f.write_text('"a"\n{"messages": [{"role": "user", "content": "b"}], "id": 7}\n')
    assert run_file(Echo(), read_prompts(f), out, GenerationConfig()) == 2
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == [
        {"prompt": "a", "response": "A"},
        {"messages": [{"role": "user", "content": "b"}], "id": 7, "response": "B"},
    ]
