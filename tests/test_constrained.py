"""Schema-constrained decoding (llama.cpp grammars, llguidance masks) from the tasks' JSON Schemas, on the untrained
base model."""

import json

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from clinitune.cli import app
from clinitune.data.tasks import task_schema
from clinitune.eval.run import evaluate
from clinitune.models.registry import ALIASES, DEFAULT_MODEL, alias_gguf
from clinitune.models.structured import bounded_schema

RECORD_PROMPT = "Generate a patient record for a 65-year-old male with hypertension."


@pytest.fixture(scope="module")
def base_gguf():
    """SmolLM2-135M-Instruct as shipped in its PyPI package: never fine-tuned on our formats."""
    return alias_gguf(ALIASES[DEFAULT_MODEL])


def _infer(tmp_path, gguf, prompt, schema_file=None):
    cfg = tmp_path / "gen.yaml"
    cfg.write_text(yaml.safe_dump({"generation": {"temperature": 0.0, "max_new_tokens": 1024}}))
    args = ["infer", "--gguf", str(gguf), "--prompt", prompt, "--config", str(cfg)]
    res = CliRunner().invoke(app, args + (["--json-schema", str(schema_file)] if schema_file else []))
    assert res.exit_code == 0, res.output
    return res.output.strip()


@pytest.mark.parametrize("task", ["record_generation", "fhir_conversion"])
def test_constrained_answers_are_valid_json_of_the_schema(tmp_path, base_gguf, task):
    schema = task_schema(task)
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps(schema))
    prompt = (
        RECORD_PROMPT
        if task == "record_generation"
        else (
            "Convert this patient record to a FHIR R4 Bundle: "
            '{"patient_id": "PBCDFGHJKL", "age": 54, "gender": "female", '
            '"diagnoses": [{"code": "E11.9", "description": "Type 2 diabetes mellitus without complications"}]}'
        )
    )
    jsonschema.validate(json.loads(_infer(tmp_path, base_gguf, prompt, schema_file)), schema)


def test_the_base_model_alone_does_not_write_the_record(tmp_path, base_gguf):
    with pytest.raises((json.JSONDecodeError, jsonschema.ValidationError)):
        jsonschema.validate(json.loads(_infer(tmp_path, base_gguf, RECORD_PROMPT)), task_schema("record_generation"))


def test_bounded_schema_keeps_the_shape_and_bounds_every_path():
    s = bounded_schema(task_schema("record_generation"))
    assert s["required"] == task_schema("record_generation")["required"]
    assert s["properties"]["diagnoses"]["maxItems"] == 3
    assert (
        s["properties"]["diagnoses"]["items"]["properties"]["code"]["pattern"]
        == "^[A-Z][0-9][0-9A-Z]([.][0-9A-Z]{1,4})?$"
    )
    assert {"type": "null"} in s["properties"]["zip3"]["anyOf"]  # a union spelled out, its string still bounded
    assert all(
        a.get("maxLength") or a == {"type": "null"} or a.get("pattern") for a in s["properties"]["zip3"]["anyOf"]
    )


def _record_test_file(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    rows = [
        {
            "id": f"r{i}",
            "task": "record_generation",
            "group": f"g{i}",
            "instruction": f"Generate a patient record for a {40 + i}-year-old female with asthma.",
            "input": "",
            "output": json.dumps(
                {
                    "age": 40 + i,
                    "gender": "female",
                    "diagnoses": [{"code": "J45.909", "description": "Unspecified asthma, uncomplicated"}],
                    "medications": [],
                    "allergies": [],
                    "lab_results": [],
                }
            ),
        }
        for i in range(3)
    ]
    (d / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d / "test.jsonl"


def test_eval_constrain_reports_json_validity_with_and_without(tmp_path, base_gguf):
    data = _record_test_file(tmp_path)
    results = evaluate(data=data, out=tmp_path / "e", gguf=base_gguf, constrain=True, quiet=True)
    free = results.candidates["gguf"]["tasks"]["record_generation"]
    held = results.candidates["gguf_schema"]["tasks"]["record_generation"]
    assert held["json_valid"] == 1.0 and held["schema_valid"] == 1.0 and free["json_valid"] < 1.0
    assert "GGUF + schema" in (tmp_path / "e" / "report.md").read_text()


@pytest.mark.slow
def test_transformers_decoding_is_held_to_the_schema_too(tmp_path):
    """The same untrained model as a transformers checkpoint: llguidance masks each step to the schema."""
    data = _record_test_file(tmp_path)
    results = evaluate(
        data=data, out=tmp_path / "e", model=DEFAULT_MODEL, baselines=(), constrain=True, quiet=True, limit=None
    )
    free = results.candidates["fine_tuned"]["tasks"]["record_generation"]
    held = results.candidates["fine_tuned_schema"]["tasks"]["record_generation"]
    assert held["json_valid"] == 1.0 and held["schema_valid"] == 1.0 and free["json_valid"] < 1.0
    assert "fine-tuned + schema" in (tmp_path / "e" / "report.md").read_text()
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps(task_schema("fhir_conversion")))
    cfg = tmp_path / "gen.yaml"
    cfg.write_text(yaml.safe_dump({"generation": {"temperature": 0.0, "max_new_tokens": 1024}}))
    prompt = 'Convert this record to FHIR R4: {"patient_id": "PX", "age": 54, "gender": "female", "diagnoses": []}'
    args = ["infer", "--model", DEFAULT_MODEL, "--prompt", prompt, "--config", str(cfg), "--json-schema", str(schema)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    answer = res.output[res.output.index("{") :]  # the model lays its JSON out over several lines
    jsonschema.validate(json.loads(answer), task_schema("fhir_conversion"))


def test_a_pattern_the_grammar_cannot_express_is_refused_not_crashed(tmp_path, base_gguf):
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"zip": {"type": "string", "pattern": "^\\d{5}$"}}}))
    res = CliRunner().invoke(
        app, ["infer", "--gguf", str(base_gguf), "--prompt", "Code asthma.", "--json-schema", str(schema)]
    )
    assert res.exit_code == 2 and "write them as ranges ([0-9]" in res.output


def test_a_prompt_longer_than_the_context_is_refused_in_one_line(base_gguf):
    res = CliRunner().invoke(app, ["infer", "--gguf", str(base_gguf), "--prompt", "hypertension " * 4500])
    assert res.exit_code == 2 and "exceeds the model's context" in res.output
    assert "Traceback" not in res.output
