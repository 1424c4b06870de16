import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from clinitune.cli import app
from clinitune.config import Config, config_warnings, load_config
from clinitune.errors import ClinituneError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
runner = CliRunner()


def _leaves(d: dict, prefix: tuple = ()):
    for k, v in d.items():
        if isinstance(v, dict) and v:
            yield from _leaves(v, (*prefix, k))
        else:
            yield (*prefix, k), v


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_shipped_configs_mean_what_they_say(name):
    """Every value written in a shipped config is the value training reads, and the file resolves to itself."""
    written = yaml.safe_load((CONFIGS / name).read_text())
    cfg = load_config(CONFIGS / name)
    assert isinstance(cfg, Config)
    for keys, value in _leaves(written):
        node = cfg
        for k in keys:
            node = node[k] if isinstance(node, dict) else getattr(node, k)
        assert node == value, f"{name}: {'.'.join(keys)} is {value!r} in the file but {node!r} in the config"
    assert load_config(None, [f"{'.'.join(k)}={json.dumps(v)}" for k, v in _leaves(cfg.model_dump(mode="json"))]) == cfg


def test_shipped_model_configs_match_their_names():
    for name, model, method in [
        ("llama-2-7b-qlora.yaml", "Llama-2-7b", "qlora"),
        ("mistral-7b-qlora.yaml", "Mistral-7B", "qlora"),
        ("stablelm-2-1_6b-qlora.yaml", "stablelm-2-1_6b", "qlora"),
        ("qlora_config.yaml", None, "qlora"),
        ("lora_config.yaml", None, "lora"),
        ("quickstart.yaml", "smollm2-135m-instruct", "lora"),
    ]:
        cfg = load_config(CONFIGS / name)
        assert cfg.lora.method == method, name
        assert model is None or model.lower() in cfg.model.name_or_path.lower(), name


def test_spec_values_in_lora_config():
    cfg = load_config(CONFIGS / "lora_config.yaml")
    assert (cfg.lora.r, cfg.lora.lora_alpha, cfg.lora.lora_dropout) == (64, 16, 0.1)
    assert cfg.training.learning_rate == 2e-4 and cfg.training.warmup_ratio == 0.03
    q = load_config(CONFIGS / "qlora_config.yaml")
    assert q.lora.method == "qlora" and q.quantization.load_in_4bit and q.quantization.bnb_4bit_quant_type == "nf4"
    assert q.training.optim == "paged_adamw_8bit"


def _bad_copy(tmp_path, old, new):
    p = tmp_path / "bad.yaml"
    p.write_text((CONFIGS / "lora_config.yaml").read_text().replace(old, new, 1))
    return p


def test_unknown_key_names_file_line_and_suggestion(tmp_path):
    bad = _bad_copy(tmp_path, "  r: 64", "  rank: 64")
    with pytest.raises(ClinituneError) as exc:
        load_config(bad)
    msg = str(exc.value)
    assert "lora.rank: unknown key; did you mean r?" in msg
    line = next(i for i, text in enumerate(bad.read_text().splitlines(), 1) if "rank:" in text)
    assert f"{bad}:{line}:" in msg


def test_unknown_key_difflib_suggestion(tmp_path):
    with pytest.raises(ClinituneError, match="training.learnin_rate: unknown key; did you mean learning_rate"):
        load_config(_bad_copy(tmp_path, "  learning_rate:", "  learnin_rate:"))


def test_out_of_range_names_range(tmp_path):
    with pytest.raises(ClinituneError, match=r"lora.lora_dropout: 1.5 is out of range; allowed: >= 0.0 and < 1.0"):
        load_config(_bad_copy(tmp_path, "lora_dropout: 0.1", "lora_dropout: 1.5"))


def test_bad_literal_and_yaml_syntax(tmp_path):
    with pytest.raises(ClinituneError, match="lora.method: 'lorax' is not allowed"):
        load_config(_bad_copy(tmp_path, "method: lora", "method: lorax"))
    broken = tmp_path / "broken.yaml"
    broken.write_text("model:\n  name_or_path: [unclosed\n")
    with pytest.raises(ClinituneError, match=r"broken.yaml:\d+: not valid YAML"):
        load_config(broken)


def test_learning_rate_outside_spec_range_is_warning_not_error():
    cfg = load_config(CONFIGS / "lora_config.yaml", ["training.learning_rate=1e-3"])
    assert cfg.training.learning_rate == 1e-3
    assert any("learning_rate" in w for w in config_warnings(cfg))
    assert not config_warnings(load_config(CONFIGS / "lora_config.yaml"))


def test_set_overrides_any_key_and_rejects_unknown():
    cfg = load_config(CONFIGS / "lora_config.yaml", ["lora.target_modules=all-linear", "training.max_steps=7"])
    assert cfg.lora.target_modules == "all-linear" and cfg.training.max_steps == 7
    with pytest.raises(ClinituneError, match="did you mean training"):
        load_config(CONFIGS / "lora_config.yaml", ["trainin.max_steps=7"])
    with pytest.raises(ClinituneError, match="expected KEY=VALUE"):
        load_config(None, ["training.max_steps"])


def test_4bit_needs_qlora():
    with pytest.raises(ClinituneError, match="needs lora.method: qlora"):
        load_config(None, ["quantization.load_in_4bit=true"])


def test_cli_dry_run_and_error_exit_code(tmp_path):
    ok = runner.invoke(app, ["train", "--config", str(CONFIGS / "lora_config.yaml"), "--dry-run"])
    assert ok.exit_code == 0, ok.output
    assert "r: 64" in ok.stdout
    bad = runner.invoke(app, ["train", "--config", str(_bad_copy(tmp_path, "  r: 64", "  rank: 64")), "--dry-run"])
    assert bad.exit_code == 2
    assert "rank" in bad.output and "did you mean r?" in bad.output and "Traceback" not in bad.output


def test_quickstart_profiles_are_configs_of_the_one_schema(tmp_path):
    import yaml

    from clinitune.quickstart import PROFILES, flag_sets, profile_config, train_config

    cfgs = {name: load_config(train_config(tmp_path / name, profile_config(name), seed=7)) for name in PROFILES}
    assert cfgs["fast"].training.max_steps == 100 and cfgs["full"].training.max_steps == 1200
    assert cfgs["fast"].training.max_minutes == 4.5 and cfgs["full"].training.max_minutes == 40
    assert (cfgs["fast"].eval.limit, cfgs["full"].eval.limit) == (32, 160) and cfgs["full"].training.seed == 7
    assert (cfgs["fast"].quickstart.patients, cfgs["full"].quickstart.patients) == (400, 500)
    assert cfgs["full"].training.eval_steps == 100 and cfgs["full"].data.eval_max_examples == 96
    assert cfgs["fast"].training.eval_steps == 50 and cfgs["fast"].data.eval_max_examples == 32
    # the full profile's task weights override the fast one's one by one; the others stay
    base = yaml.safe_load(PROFILES["fast"].read_text())["data"]["task_weights"]
    mine = yaml.safe_load(PROFILES["full"].read_text())["data"]["task_weights"]
    assert cfgs["full"].data.task_weights == {**base, **mine} and set(mine) < set(base)
    assert cfgs["fast"].data.task_weights == base
    # an explicit step count replaces the time budget; a flag replaces its key
    steps = profile_config("full", flag_sets(max_steps=12, patients=60, eval_limit=8))
    assert steps.training.max_steps == 12 and steps.training.max_minutes is None
    assert (steps.quickstart.patients, steps.eval.limit) == (60, 8)
    with pytest.raises(ClinituneError, match="--profile 'huge'"):
        profile_config("huge")


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "the config is empty"),
        ("lora:\n  r: 8\n  r: 16\n", ":3: key 'r' appears twice"),
        ("lora:\n  r: true\n", "expected a number"),
        ("training:\n  max_steps: 0\n", "0 steps would train nothing"),
        ("training:\n  seed: 4294967296\n", "training.seed"),
    ],
)
def test_config_surprises_are_errors_naming_the_line_or_field(tmp_path, text, message):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ClinituneError, match=message):
        load_config(p)


def test_a_utf16_config_gets_one_line(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("lora:\n  r: 8\n", encoding="utf-16")
    res = runner.invoke(app, ["train", "--config", str(p)])
    assert res.exit_code == 2 and "not UTF-8 text" in res.output and "Traceback" not in res.output
