"""Direct tests of small modules the end-to-end tests only pass through: the name rules' word classes and cues,
the optimizer's parameter groups and the learning-rate schedules."""

import pytest
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from clinitune.config import Config
from clinitune.data.privacy.phi_names import cued, is_abbreviation, word_class
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
