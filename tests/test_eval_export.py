import json
import re
import sqlite3

import numpy as np
import pytest
import torch
from conftest import knowledge_rows, tiny_model_dir

from clinitune.config import GenerationConfig
from clinitune.data.example import instruction as instruction_example
from clinitune.data.tasks import CUSTOM, SPECS
from clinitune.data.tasks.text_to_sql import guard
from clinitune.eval import metrics as M
from clinitune.eval.privacy import auc, non_members
from clinitune.eval.run import sample_sizes
from clinitune.export.gguf_writer import write_gguf
from clinitune.export.run import modelfile

REC = {
    "patient_id": "PBCDFGHJKLM",
    "age": 65,
    "gender": "male",
    "diagnoses": [{"code": "I10", "description": "Essential (primary) hypertension", "onset_year": 2019}],
    "medications": [{"name": "lisinopril", "dose": "10 mg", "frequency": "once daily", "indication": "I10"}],
    "allergies": [],
    "lab_results": [],
}


def _ex(output: str, instruction: str = "Answer the question.") -> object:
    return instruction_example("t", "g", instruction, output)


def test_record_generation_metrics():
    ex = _ex(json.dumps(REC), "Generate a patient record for a 65-year-old male with hypertension.")
    good = M.score("record_generation", json.dumps(REC), ex)
    assert good == {"json_valid": 1.0, "schema_valid": 1.0, "plausible": 1.0, "attributes_honoured": 1.0}
    assert M.score("record_generation", '{"patient_id": "P1", "age": 65', ex)["json_valid"] == 0.0
    wrong = dict(REC, gender="female", diagnoses=[{"code": "N40.0", "description": "BPH"}])
    s = M.score("record_generation", "Here it is: " + json.dumps(wrong), ex)
    assert s["json_valid"] == 1.0 and s["plausible"] == 0.0 and s["attributes_honoured"] == 0.0


def test_icd10_metrics_parse_free_text():
    ex = _ex("The ICD-10-CM code for essential (primary) hypertension is I10.")
    assert M.score("icd10_coding", "It is I10, essential hypertension.", ex) == {
        "exact_match": 1.0,
        "category_match": 1.0,
        "valid_code_rate": 1.0,
    }
    s = M.score("icd10_coding", "Probably I11.9", ex)
    assert s["exact_match"] == 0.0 and s["category_match"] == 0.0 and s["valid_code_rate"] == 1.0
    assert M.score("icd10_coding", "code 111.1.1.2", ex)["valid_code_rate"] == 0.0
    lk = _ex("E11.9 is the ICD-10-CM code for Type 2 diabetes mellitus without complications.")
    assert (
        M.score("icd10_lookup", "E11.9 means type 2 diabetes mellitus, without complications", lk)["description_match"]
        == 1.0
    )
    assert M.score("icd10_lookup", "E11.9 is asthma", lk)["description_match"] == 0.0


@pytest.fixture
def conn(tmp_path):
    db = tmp_path / "t.db"
    c = sqlite3.connect(db)
    c.execute("CREATE TABLE conditions (id INTEGER, patient_id INTEGER, code TEXT)")
    c.executemany("INSERT INTO conditions VALUES (?, ?, ?)", [(1, 1, "I10"), (2, 2, "I10"), (3, 2, "E11.9")])
    c.commit()
    c.close()
    ro = guard(sqlite3.connect(f"file:{db}?mode=ro", uri=True))  # as eval's sqlite_copy opens it
    yield ro
    ro.close()


def test_text_to_sql_execution_accuracy_and_refusal(conn):
    ex = _ex("SELECT COUNT(DISTINCT patient_id) FROM conditions WHERE code = 'I10';")
    assert (
        M.score("text_to_sql", "SELECT COUNT(*) FROM conditions WHERE code = 'I10'", ex, conn)["execution_accuracy"]
        == 1.0
    )
    assert M.score("text_to_sql", "SELECT COUNT(*) FROM conditions", ex, conn)["execution_accuracy"] == 0.0
    executed = []
    conn.set_trace_callback(executed.append)
    for bad in (
        "DROP TABLE conditions",
        "SELECT 1; DROP TABLE conditions",
        "DELETE FROM conditions",
        "PRAGMA writable_schema=1",
    ):
        assert M.score("text_to_sql", bad, ex, conn)["execution_accuracy"] == 0.0
    assert not any("DROP" in s.upper() or "DELETE" in s.upper() or "PRAGMA" in s.upper() for s in executed)
    assert conn.execute("SELECT COUNT(*) FROM conditions").fetchone()[0] == 3


def test_extraction_validation_fhir_knowledge_metrics():
    ref = {
        "diagnoses": [{"name": "hypertension", "code": "I10"}],
        "medications": [{"name": "lisinopril", "dose": "10 mg"}],
        "vitals": {"bmi": 31.2},
    }
    ex = _ex(json.dumps(ref))
    assert M.score("extraction", json.dumps(ref), ex)["f1"] == 1.0
    half = dict(ref, medications=[])
    s = M.score("extraction", json.dumps(half), ex)
    assert s["precision"] == 1.0 and 0 < s["recall"] < 1
    v_ref = {"valid": False, "errors": [{"rule": "invalid_code", "field": "diagnoses[0].code", "message": "x"}]}
    assert M.score("validation", json.dumps(v_ref), _ex(json.dumps(v_ref)))["f1"] == 1.0
    assert M.score("validation", json.dumps({"valid": True, "errors": []}), _ex(json.dumps(v_ref)))["recall"] == 0.0
    from clinitune.data.tasks.fhir_conversion import fhir_resources

    bundle = fhir_resources(REC)
    assert M.score("fhir_conversion", json.dumps(bundle), _ex(json.dumps(bundle))) == {
        "fhir_valid": 1.0,
        "field_f1": 1.0,
    }
    broken = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": {"resourceType": "Condition", "code": {"text": "x"}}}],
    }
    assert M.score("fhir_conversion", json.dumps(broken), _ex(json.dumps(bundle)))["fhir_valid"] == 0.0
    k = _ex("Safe Harbor requires removing 18 identifiers.")
    assert M.score("knowledge", "Safe Harbor requires removing 18 identifiers.", k)["token_f1"] == 1.0


def test_auc():
    assert auc([3, 4], [1, 2]) == 1.0 and auc([1], [1]) == 0.5 and auc([1, 2], [3, 4]) == 0.0


def _render_go(template: str, system: str | None, messages: list[dict]) -> str:
    """Just enough of Go's text/template for the Modelfile: if/range/end and field access, with {{- trimming."""
    template = re.sub(r"\s*\{\{-", "{{", template)
    m = re.fullmatch(
        r"\{\{ if \.System \}\}(.*?)\{\{ end \}\}\{\{ range \.Messages \}\}(.*?)\{\{ end \}\}(.*)", template, re.S
    )
    assert m, template
    sys_part, msg_part, tail = m.groups()
    out = sys_part.replace("{{ .System }}", system) if system else ""
    for msg in messages:
        out += msg_part.replace("{{ .Role }}", msg["role"]).replace("{{ .Content }}", msg["content"])
    return out + tail


def test_modelfile_template_matches_chat_template(tiny_llama):
    from clinitune.models.loading import load_tokenizer

    tok = load_tokenizer(tiny_llama)
    text = modelfile("m.gguf", tok, GenerationConfig())
    template = re.search(r'TEMPLATE """(.*?)"""', text, re.S).group(1)
    assert 'PARAMETER stop "<|im_end|>"' in text and "FROM ./m.gguf" in text and "PARAMETER temperature 0.7" in text
    convo = [
        {"role": "user", "content": "What is I10?"},
        {"role": "assistant", "content": "Essential hypertension."},
        {"role": "user", "content": "And E11.9?"},
    ]
    for system in (None, "You are a coder."):
        msgs = ([{"role": "system", "content": system}] if system else []) + convo
        want = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        assert _render_go(template, system, convo) == want


@pytest.mark.parametrize(
    "arch,sentencepiece", [("llama", False), ("mistral", True), ("qwen2", False), ("stablelm", False), ("llama", True)]
)
def test_tiny_models_round_trip_through_f16_gguf(tmp_path, arch, sentencepiece):
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # transformers' GGUF reader guesses "mistral" from general.name and has no tensor map for it, so the
    # directory (which becomes general.name) avoids the architecture's name.
    model_dir = tiny_model_dir(tmp_path / "tiny", arch, tied=arch != "mistral", sentencepiece=sentencepiece)
    path = write_gguf(model_dir, tmp_path / "tiny.gguf", dtype="f16")
    hf = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    vocab = Llama(model_path=str(path), vocab_only=True, verbose=False)
    # Chat-rendered text, as infer and Ollama send it: llama.cpp must tokenize it exactly as HF does.
    for text in ["Essential hypertension, I10.", "two  spaces\nand a newline", "Métformine 500 mg ✓", " leading space"]:
        chat = tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)
        assert vocab.tokenize(chat.encode(), add_bos=True, special=True) == tok(chat)["input_ids"], text
    ids = [5, 17, 42, 99, 7, 250, 3, 64]
    with torch.no_grad():
        want = hf(torch.tensor([ids])).logits[0].numpy()
    llm = Llama(model_path=str(path), n_ctx=64, logits_all=True, verbose=False)
    llm.eval(ids)
    got = np.array(llm.scores[: len(ids)])
    assert np.abs(got - want).max() < 0.05, np.abs(got - want).max()
    back = AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file="tiny.gguf")
    assert back.config.num_hidden_layers == hf.config.num_hidden_layers


def test_canary_exposure_grows_with_repetition(tmp_path, tiny_llama):
    """A model trained on a canary many times exposes it more than a model that never saw it."""
    import yaml

    from clinitune.config import load_config
    from clinitune.data.prepare import plant_canaries
    from clinitune.eval.privacy import canary_exposure
    from clinitune.models.loading import load_causal_lm, load_tokenizer
    from clinitune.train.loop import train

    filler = [
        instruction_example(
            "knowledge", f"g{i}", f"Describe coding rule number {i}.", f"Rule {i}: code to the highest specificity."
        )
        for i in range(16)
    ]
    exposures = {}
    for with_canary in (True, False):
        d = tmp_path / f"data-{with_canary}"
        d.mkdir()
        rows = list(filler)
        spec = plant_canaries(rows, 1, seed=3)
        spec["canaries"][0]["repeats"] = 24
        if with_canary:
            rows += [r for r in rows if r.task == "canary"] * 23  # 24 copies in all
        else:
            rows = [r for r in rows if r.task != "canary"]
        (d / "train.jsonl").write_text("".join(json.dumps(r.to_dict()) + "\n" for r in rows))
        (d / "canaries.json").write_text(json.dumps(spec))
        cfg = {
            "model": {"name_or_path": str(tiny_llama)},
            "lora": {"method": "full"},
            "data": {"train": str(d / "train.jsonl"), "max_seq_length": 64, "packing": True},
            "training": {
                "output_dir": str(d / "run"),
                "per_device_train_batch_size": 8,
                "gradient_accumulation_steps": 1,
                "learning_rate": 1e-2,
                "max_steps": 80,
                "warmup_ratio": 0.0,
                "precision": "fp32",
                "logging_steps": 10,
                "save_steps": 1000,
                "gradient_checkpointing": False,
                "early_stopping_patience": None,
            },
        }
        (d / "cfg.yaml").write_text(yaml.safe_dump(cfg))
        summary = train(load_config(d / "cfg.yaml"), quiet=True)
        model = load_causal_lm(summary.output)
        exposures[with_canary] = canary_exposure(model, load_tokenizer(summary.output), d, 100, seed=1)[
            "max_exposure_bits"
        ]
    assert exposures[True] > exposures[False] + 1.0, exposures


@pytest.mark.parametrize("task", [*SPECS, CUSTOM.name])
@pytest.mark.parametrize(
    "pred", ['{"entry": ["x", 3]}', '["a"]', '{"diagnoses": "E11.9", "errors": [1], "vitals": 5}', "null", ""]
)
def test_any_output_shape_scores_without_crashing(task, pred):
    ref = _ex(json.dumps({"resourceType": "Bundle", "entry": []}) if task == "fhir_conversion" else json.dumps(REC))
    s = M.score(task, pred, ref)
    assert all(0.0 <= v <= 1.0 for v in s.values())


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_lora_gguf_applied_by_llama_cpp_matches_merged_hf(tmp_path, arch):
    from llama_cpp import Llama
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from clinitune.export.gguf_writer import write_lora_gguf

    base_dir = tiny_model_dir(tmp_path / "tiny", arch)
    torch.manual_seed(0)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base_dir),
        LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", use_rslora=arch == "qwen2"),
    )
    for name, p in model.named_parameters():
        if "lora_B" in name:  # B starts at zero; a real update is needed to see it applied
            torch.nn.init.normal_(p, std=0.2)
    model.save_pretrained(tmp_path / "adapter")
    ids = [5, 17, 42, 99, 7, 250, 3, 64]
    with torch.no_grad():
        want = model.merge_and_unload()(torch.tensor([ids])).logits[0].numpy()
        plain = AutoModelForCausalLM.from_pretrained(base_dir)(torch.tensor([ids])).logits[0].numpy()
    base = write_gguf(base_dir, tmp_path / "base.gguf", dtype="f32")
    lora = write_lora_gguf(tmp_path / "adapter", base_dir, tmp_path / "lora.gguf")
    llm = Llama(model_path=str(base), lora_path=str(lora), n_ctx=64, logits_all=True, verbose=False)
    llm.eval(ids)
    got = np.array(llm.scores[: len(ids)])
    assert np.abs(want - plain).max() > 0.1  # the adapter changes the model
    assert np.abs(got - want).max() < 0.02, np.abs(got - want).max()


def test_lora_gguf_refuses_what_it_cannot_carry(tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from clinitune.errors import ClinituneError
    from clinitune.export.gguf_writer import write_lora_gguf

    base_dir = tiny_model_dir(tmp_path / "tiny", "llama")
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base_dir),
        LoraConfig(r=4, target_modules=["q_proj"], modules_to_save=["lm_head"]),
    )
    model.save_pretrained(tmp_path / "adapter")
    with pytest.raises(ClinituneError, match="modules_to_save|full modules"):
        write_lora_gguf(tmp_path / "adapter", base_dir, tmp_path / "lora.gguf")


def test_greedy_drops_finished_rows_and_matches_transformers(tiny_llama):
    """Rows with their own budgets leave the batch as they finish; each row's tokens equal transformers' generate."""
    from transformers import AutoModelForCausalLM

    from clinitune.data.tokenize import prompt_ids
    from clinitune.models.generate import eos_ids, greedy
    from clinitune.models.loading import load_tokenizer

    tok = load_tokenizer(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).eval()
    stop = eos_ids(tok)
    rows = [prompt_ids(tok, [{"role": "user", "content": "code " * n}]) for n in (1, 5, 9, 3, 7)]
    budgets = [3, 17, 8, 30, 1]
    width = max(map(len, rows))
    ids = torch.tensor([[tok.pad_token_id] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    ours = greedy(model, ids, mask, budgets, set(stop))
    for r, b, tokens in zip(rows, budgets, ours):
        x = torch.tensor([r])
        ref = model.generate(
            input_ids=x,
            attention_mask=torch.ones_like(x),
            max_new_tokens=b,
            do_sample=False,
            eos_token_id=stop,
            pad_token_id=tok.pad_token_id,
        )[0, len(r) :].tolist()
        assert tokens == [t for t in ref if t not in stop]
    assert [len(t) for t in ours] == budgets  # a random model never says end-of-turn: each row ran to its own budget


def test_membership_non_members_exclude_answers_that_were_trained():
    train = [_ex("F41.1"), _ex("Yes.")]
    test = [_ex("Yes."), _ex("I10"), _ex("F41.1"), _ex("No.")]
    assert non_members(train, test) == [1, 3]


def test_eval_sample_makes_every_verdict_reachable_and_pays_with_cheap_examples():
    from clinitune.stats import min_decisive_n, paired

    ex = lambda task, n, chars: [_ex("x" * chars) for _ in range(n)]  # noqa: E731
    by_task = {
        "record_generation": ex("record_generation", 30, 1200),
        "icd10_coding": ex("icd10_coding", 30, 90),
        "knowledge": ex("knowledge", 30, 500),
        "extraction": ex("extraction", 30, 700),
    }
    need = min_decisive_n()
    # The fewest examples a verdict needs: one fewer, and all of them right against all wrong is not significant.
    assert paired([1.0] * need, [0.0] * need).verdict == "better"
    assert paired([1.0] * (need - 1), [0.0] * (need - 1)).verdict == "no significant difference"
    # limit 16 shares out as 4 per long task and 16 for the cheap coding task: at 4 no long task could ever be
    # decided, so each is raised to 6, paid for with coding's surplus (its answers cost 90 characters, not 1,200).
    cost = {"record_generation": 1200, "icd10_coding": 90, "knowledge": 500, "extraction": 700}
    sizes = sample_sizes(by_task, 16)
    assert sizes == dict.fromkeys(sorted(by_task), need)
    share = {"record_generation": 4, "icd10_coding": 16, "knowledge": 8, "extraction": 4}
    assert sum(sizes[t] * c for t, c in cost.items()) <= 1.25 * sum(share[t] * c for t, c in cost.items())
    # With room to spare, cheap tasks still get more; with too little, the dearest keep their share undecidable.
    big = sample_sizes(by_task, 64)
    assert big["icd10_coding"] > big["extraction"] >= need
    assert sample_sizes(by_task, 3) == {"extraction": 1, "icd10_coding": need, "knowledge": 2, "record_generation": 1}
    # a long record in and a short answer out: generation costs the answer, so it is a cheap task
    by_task["validation"] = [_ex("x" * 140, "y" * 1000) for _ in range(30)]
    assert sample_sizes(by_task, 20)["validation"] >= sample_sizes(by_task, 20)["record_generation"]


def test_eval_takes_unset_flags_from_the_runs_eval_section(tmp_path, tiny_llama):
    import yaml
    from typer.testing import CliRunner

    from clinitune.cli import app
    from clinitune.config import load_config
    from clinitune.train.loop import train

    d = tmp_path / "data"
    d.mkdir()

    for split, n in (("train", 8), ("test", 6)):
        (d / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in knowledge_rows(split, n)))
    cfg = {
        "model": {"name_or_path": str(tiny_llama)},
        "data": {"train": str(d / "train.jsonl"), "max_seq_length": 64},
        "training": {
            "output_dir": str(tmp_path / "run"),
            "max_steps": 2,
            "precision": "fp32",
            "save_steps": 1000,
            "early_stopping_patience": None,
            "gradient_checkpointing": False,
        },
        "eval": {"baselines": ["zero-shot"], "few_shot_k": 1, "limit": 3},
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    train(load_config(tmp_path / "cfg.yaml"), quiet=True)

    res = CliRunner().invoke(
        app,
        ["eval", "--run", str(tmp_path / "run"), "--data", str(d / "test.jsonl"), "--out", str(tmp_path / "e1"), "-q"],
    )
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "e1" / "metrics.json").read_text())
    assert set(m["candidates"]) == {"zero_shot", "fine_tuned"} and m["n_examples"] == 3  # from the run's eval: section
    res = CliRunner().invoke(
        app,
        [
            "eval",
            "--run",
            str(tmp_path / "run"),
            "--data",
            str(d / "test.jsonl"),
            "--out",
            str(tmp_path / "e2"),
            "--baseline",
            "none",
            "--limit",
            "4",
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "e2" / "metrics.json").read_text())
    # flags win (4: raising it to the 6 a verdict needs would overrun its budget by more than a quarter)
    assert set(m["candidates"]) == {"fine_tuned"} and m["n_examples"] == 4


@pytest.mark.slow
def test_every_kind_export_ships_has_a_floor_and_a_lost_fine_tune_is_refused(tmp_path):
    from transformers import AutoModelForCausalLM

    from clinitune.errors import ClinituneError
    from clinitune.export.run import MIN_TOP1, QUANTS, gate, hf_reference, verification_examples, verify
    from clinitune.models.registry import resolve_model

    assert set(QUANTS) | {"f16", "f32", "base+lora"} <= set(MIN_TOP1)
    examples = verification_examples(None, 4)  # no eval split: the packaged knowledge questions stand in
    assert len(examples) == 4 and all(e.task == "knowledge" for e in examples)
    # A random-init model predicts one token everywhere, so any two agree; the embedded model does not.
    base = resolve_model("smollm2-135m-instruct")
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    torch.manual_seed(0)
    with torch.no_grad():  # a "fine-tune" that moves the answers: what an export that lost it would miss
        for name, p in model.named_parameters():
            if name.endswith("proj.weight"):
                p.add_(torch.randn_like(p) * p.std() * 0.1)
    tuned = tmp_path / "tuned"
    model.save_pretrained(tuned)
    for f in base.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "clinitune_source")) or f.suffix == ".jinja":
            (tuned / f.name).write_bytes(f.read_bytes())
    ref = hf_reference(tuned, examples)
    good = verify(write_gguf(tuned, tmp_path / "tuned.gguf", dtype="f16"), ref)
    gate("f16", tmp_path / "tuned.gguf", good)
    assert good["floor"] == MIN_TOP1["f16"] and good["top1_ci95"][0] <= good["top1_agreement"] <= good["top1_ci95"][1]
    lost = verify(write_gguf(base, tmp_path / "base.gguf", dtype="f16"), ref)  # the export lost the fine-tune
    with pytest.raises(ClinituneError, match="floor"):
        gate("q4_k_m", tmp_path / "base.gguf", lost)  # refused even under the coarsest kind's floor


def test_a_second_eval_reuses_the_base_models_answers_and_a_changed_input_misses(tmp_path, monkeypatch):
    from clinitune.eval import run as eval_run

    base_dir = tiny_model_dir(tmp_path / "tiny", "llama")
    d = tmp_path / "data"
    d.mkdir()
    for split, n in (("train", 6), ("test", 4)):
        (d / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in knowledge_rows(split, n)))
    generated = []
    real = eval_run.generate

    def counting(m, tok, prompts, *a, **kw):
        generated.append(len(prompts))
        return real(m, tok, prompts, *a, **kw)

    monkeypatch.setattr(eval_run, "generate", counting)
    kw = dict(data=d / "test.jsonl", model=str(base_dir), quiet=True)
    first = eval_run.evaluate(out=tmp_path / "e1", **kw)
    assert generated == [8, 4] and first.baseline_cache == {"key": first.baseline_cache["key"], "hit": False}
    second = eval_run.evaluate(out=tmp_path / "e2", **kw)
    assert generated == [8, 4, 4] and second.baseline_cache["hit"] is True  # only the model under test ran again
    p1, p2 = ((tmp_path / e / "predictions.jsonl").read_text() for e in ("e1", "e2"))
    assert p1 == p2 and first.candidates == second.candidates
    assert "reused from the data set's baselines/" in (tmp_path / "e2" / "report.md").read_text()
    # Another few-shot k, another model file, or the cache turned off: the base model answers again.
    eval_run.evaluate(out=tmp_path / "e3", k=1, **kw)
    assert generated[-2:] == [8, 4]
    cfg = json.loads((base_dir / "config.json").read_text())
    (base_dir / "config.json").write_text(json.dumps({**cfg, "rms_norm_eps": 1e-5}))
    changed = eval_run.evaluate(out=tmp_path / "e4", **kw)
    assert generated[-2:] == [8, 4] and changed.baseline_cache["hit"] is False
    off = eval_run.evaluate(out=tmp_path / "e5", cache_baselines=False, **kw)
    assert generated[-2:] == [8, 4] and off.baseline_cache is None
