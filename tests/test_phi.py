"""The PHI promise end to end: every text of every shape is screened, in prepare, validate and train alike."""

import datetime as dt
import json
import re

import pytest
import yaml
from typer.testing import CliRunner

from clinitune.cli import app
from clinitune.data.example import ExampleError, parse, parse_prompt
from clinitune.data.manifest import phi_gate
from clinitune.data.prepare import prepare
from clinitune.data.privacy import keys, phi, surrogates
from clinitune.errors import ClinituneError

KEY = keys.DataKey(b"s" * 32, kept=True)

runner = CliRunner()


def _chat(system: str, user: str, assistant: str, patient: str) -> dict:
    return {
        "patient_id": patient,
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
            {"role": "assistant", "content": assistant},
        ],
    }


CLEAN_SYSTEM = "You are a careful clinical documentation assistant."
CHATS = [
    # line 1: identifier in the system prompt only
    _chat(
        "You assist Dr. Okonkwo-Baptiste with his clinic notes.",
        "Summarize: cough for three days, no fever.",
        "Three days of cough without fever; supportive care advised.",
        "p1",
    ),
    # line 2: identifier in the user turn only
    _chat(
        CLEAN_SYSTEM,
        "Summarize: Siobhán Ní Bhriain, SSN 912-34-5678, has asthma.",
        "Asthma, stable on inhaled corticosteroids; continue current plan.",
        "p2",
    ),
    # line 3: identifier in the assistant turn only
    _chat(
        CLEAN_SYSTEM,
        "Summarize the follow-up plan for this patient.",
        "Call the patient at (617) 555-0143 to book the follow-up visit.",
        "p3",
    ),
    # line 4: clean, eponyms and brand drugs
    _chat(
        CLEAN_SYSTEM,
        "Summarize: Parkinson's disease, on Sinemet; Apgar score history irrelevant.",
        "Parkinson's disease managed with Sinemet; no change today.",
        "p4",
    ),
    # line 5: clean
    _chat(
        CLEAN_SYSTEM,
        "Summarize: Hodgkin lymphoma in remission; Glasgow Coma Scale 15.",
        "Hodgkin lymphoma in remission, neurologically intact.",
        "p4",
    ),
]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _prepare(src, out, **kw):
    return prepare(source="jsonl", db=None, path=src, out=out, tasks=["knowledge"], progress=False, **{"seed": 1, **kw})


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_example_parser_accepts_every_shape_and_names_the_line():
    shapes = [
        {"instruction": "Give the code for asthma.", "output": "J45.909"},
        {"prompt": "Code for asthma?", "completion": "J45.909"},
        {"messages": [{"role": "user", "content": "Code for asthma?"}, {"role": "assistant", "content": "J45.909"}]},
        {"text": "Asthma is coded J45.909 when unspecified."},
    ]
    parsed = [parse(s, f"f.jsonl:{i}") for i, s in enumerate(shapes, 1)]
    assert [e.shape for e in parsed] == ["instruction", "prompt", "chat", "text"]
    assert all(e.reply.startswith(("J45.909", "Asthma")) for e in parsed)
    assert len({e.id for e in parsed}) == 4 and all(e.group == f"item:{e.id}" for e in parsed)
    for bad, msg in [
        ({"messages": 5}, "non-empty list"),
        ({"instruction": ["x"], "output": "y"}, "'instruction' is a list"),
        ({"foo": 1}, "unrecognized example"),
        ({"instruction": "x", "output": "y", "task": 7}, "'task'"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "assistant's reply"),
    ]:
        with pytest.raises(ExampleError, match=msg) as exc:
            parse(bad, "data.jsonl:7")
        assert str(exc.value).startswith("data.jsonl:7: ")
    assert parse_prompt({"messages": shapes[2]["messages"]}, "x") == [{"role": "user", "content": "Code for asthma?"}]


def test_chat_lines_with_phi_in_each_role_are_quarantined_with_their_fields(tmp_path):
    src = _write(tmp_path / "chats.jsonl", CHATS)
    m = _prepare(src, tmp_path / "out", seed=1, group_by="patient_id")
    q = _read(tmp_path / "out" / "quarantine.jsonl")
    assert m.counts["quarantined"] == 3 and len(q) == 3
    where = {json.dumps(r["messages"]): {(f["field"], f["type"]) for f in r["phi_findings"]} for r in q}
    assert ("messages[0].content (system)", "NAME") in where[json.dumps(CHATS[0]["messages"])]
    assert {("messages[1].content (user)", "NAME"), ("messages[1].content (user)", "SSN")} <= where[
        json.dumps(CHATS[1]["messages"])
    ]
    assert ("messages[2].content (assistant)", "PHONE") in where[json.dumps(CHATS[2]["messages"])]
    kept = [e for s in ("train", "eval", "test") for e in _read(tmp_path / "out" / f"{s}.jsonl")]
    assert sorted(e["messages"][1]["content"] for e in kept) == sorted(c["messages"][1]["content"] for c in CHATS[3:])
    # Chat lines stay chat lines: no empty instruction/output twins beside the messages.
    assert all(set(e) == {"id", "task", "group", "messages"} for e in kept)
    assert len({e["id"] for e in kept}) == 2 and len({e["group"] for e in kept}) == 1  # both are patient p4
    assert not any("p4" in e["group"] for e in kept)  # the patient id itself is never written
    everything = (tmp_path / "out" / "train.jsonl").read_text() + (tmp_path / "out" / "test.jsonl").read_text()
    assert "555-0143" not in everything and "Okonkwo" not in everything
    # A user's own chat file gets no code table and no built-in facts unless asked.
    assert m.codebook is False and sum(m.counts["total"].values()) == 2


def test_redact_keeps_the_example_with_one_surrogate_per_person_and_date_intervals(tmp_path):
    rows = [
        {
            "patient_id": "A",
            "instruction": "Summarize the visit note for this patient.",
            "output": "Maria Lopez was admitted 03/04/2021 and discharged 03/14/2021; call 617-555-0143.",
        },
        {
            "patient_id": "A",
            "instruction": "Who should the nurse call about Maria Lopez?",
            "output": "Mrs. Lopez asked for her daughter to be called first.",
        },
        {
            "patient_id": "B",
            "instruction": "Summarize the visit note for this patient.",
            "output": "Maria Lopez was admitted 03/04/2021 with pneumonia; stable.",
        },
    ]
    src = _write(tmp_path / "in.jsonl", rows)
    m = _prepare(src, tmp_path / "out", seed=3, phi_action="redact", group_by="patient_id")
    kept = [e for s in ("train", "eval", "test") for e in _read(tmp_path / "out" / f"{s}.jsonl")]
    assert len(kept) == 3 and m.counts["redacted"] == 3 and m.counts["quarantined"] == 0
    assert m.phi["action"] == "redact" and m.phi["hits_by_type"]["NAME"] >= 4
    text = json.dumps(kept)
    assert "Lopez" not in text and "Maria" not in text and "555-0143" not in text and "03/04/2021" not in text
    a = [e for e in kept if "nurse" in e["instruction"] or "discharged" in e["output"]]
    assert len({e["group"] for e in a}) == 1
    first = next(e for e in a if "discharged" in e["output"])
    second = next(e for e in a if "nurse" in e["instruction"])
    fake_last = re.search(r"^(\w+) (\w+) was admitted", first["output"]).group(2)
    assert f"Mrs. {fake_last}" in second["output"] and fake_last in second["instruction"]  # one person, one surrogate
    d1, d2 = (dt.datetime.strptime(x, "%m/%d/%Y") for x in re.findall(r"\d{2}/\d{2}/\d{4}", first["output"]))
    assert (d2 - d1).days == 10  # the interval survives the shift
    b = next(e for e in kept if e["group"] != first["group"])
    assert re.search(r"admitted (\d{2}/\d{2}/\d{4})", b["output"]).group(1) != re.search(
        r"admitted (\d{2}/\d{2}/\d{4})", first["output"]
    ).group(1)


def test_redact_keeps_every_chat_line_and_rewrites_each_role(tmp_path):
    src = _write(tmp_path / "chats.jsonl", CHATS)
    m = _prepare(src, tmp_path / "out", phi_action="redact", group_by="patient_id")
    kept = [e for s in ("train", "eval", "test") for e in _read(tmp_path / "out" / f"{s}.jsonl")]
    assert len(kept) == 5 and m.counts["redacted"] == 3 and m.counts["quarantined"] == 0
    text = json.dumps(kept, ensure_ascii=False)
    for secret in ("Okonkwo", "Siobhán", "Bhriain", "912-34-5678", "555-0143"):
        assert secret not in text
    assert sum("Parkinson's disease" in e["messages"][1]["content"] for e in kept) == 1  # clean lines untouched


def test_fail_action_refuses_and_writes_nothing(tmp_path):
    src = _write(tmp_path / "chats.jsonl", CHATS)
    out = tmp_path / "out"
    res = runner.invoke(
        app, ["prepare", "--source", "jsonl", "--path", str(src), "--out", str(out), "--phi-action", "fail", "--quiet"]
    )
    assert res.exit_code == 2, res.output
    assert "PHI found in 3 example(s)" in res.output and "Nothing was written" in res.output
    assert not out.exists()


def test_validate_prepare_and_train_agree_on_one_file(tmp_path):
    rows = [
        {
            "instruction": "Summarize the intake note for this patient.",
            "output": "Reviewed with Kwabena Mensah today; stable.",
        },
        {
            "instruction": "Summarize the intake note for this patient.",
            "output": "Stable on metformin; A1c 7.1 % on review.",
        },
        {"prompt": "Summarize the intake note for this patient.", "completion": "DOB 19620304, no acute issues today."},
        {
            "messages": [
                {"role": "user", "content": "What is Bell's palsy and how is it managed?"},
                {"role": "assistant", "content": "Facial nerve weakness; steroids early, eye protection."},
            ]
        },
        {"text": "Discharge letter for Thandiwe Dlamini, follow-up in two weeks.", "note": "ok"},
        {
            "instruction": "Summarize the intake note for this patient.",
            "output": "Seen in clinic; wound healing well.",
            "patient_name": "Giulia Bianchi",
        },
    ]
    src = _write(tmp_path / "mixed.jsonl", rows)
    res = runner.invoke(app, ["validate", str(src), "--json"])
    flagged_validate = {x["line"] for x in json.loads(res.stdout)["phi"]}
    assert flagged_validate == {1, 3, 5, 6}, res.stdout
    m = _prepare(src, tmp_path / "out")
    assert m.counts["quarantined"] == 4 and m.carried_fields == {"note": 1, "patient_name": 1}
    with pytest.raises(ClinituneError) as exc:
        phi_gate(src, allow_phi=False)
    assert "flags 4 example(s)" in str(exc.value) and f"{src}:1" in str(exc.value)
    assert phi_gate(src, allow_phi=True).flagged_lines == [1, 3, 5, 6]


def test_train_refuses_an_unscreened_file_with_phi_and_trusts_a_prepared_one(tmp_path):
    src = _write(tmp_path / "chats.jsonl", CHATS)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "model": {"name_or_path": str(tmp_path / "no-model")},
                "data": {"train": str(src)},
                "training": {"output_dir": str(tmp_path / "run")},
            }
        )
    )
    res = runner.invoke(app, ["train", "-c", str(cfg), "--quiet"])
    assert res.exit_code == 2 and "PHI screen flags 3 example(s)" in res.output and "--allow-phi" in res.output
    assert not (tmp_path / "run").exists()
    _prepare(src, tmp_path / "prep")
    assert phi_gate(tmp_path / "prep" / "train.jsonl", allow_phi=False).status == "manifest"
    # The quarantine is listed for its integrity but never vouched for: train on it and the screen runs, and refuses.
    assert (tmp_path / "prep" / "quarantine.jsonl").stat().st_size > 0
    with pytest.raises(ClinituneError, match="PHI screen flags"):
        phi_gate(tmp_path / "prep" / "quarantine.jsonl", allow_phi=False)
    cfg.write_text(cfg.read_text().replace(str(src), str(tmp_path / "prep" / "quarantine.jsonl")))
    res = runner.invoke(app, ["train", "-c", str(cfg), "--quiet"])
    assert res.exit_code == 2 and "PHI screen flags" in res.output and not (tmp_path / "run").exists()
    tampered = tmp_path / "prep" / "train.jsonl"
    tampered.write_text(tampered.read_text() + json.dumps(CHATS[1]) + "\n")
    with pytest.raises(ClinituneError, match="mixes two datasets"):
        phi_gate(tampered, allow_phi=False)  # the manifest lists other content: refused, not trusted
    tampered.rename(tmp_path / "moved.jsonl")  # away from any manifest, the file is screened where it enters
    with pytest.raises(ClinituneError, match="flags 1 example"):
        phi_gate(tmp_path / "moved.jsonl", allow_phi=False)


EPONYMS = [
    "Parkinson's disease",
    "Hodgkin lymphoma",
    "Bell's palsy",
    "Apgar score 9",
    "Glasgow Coma Scale 14",
    "Lasix 40 mg daily",
    "Charcot-Marie-Tooth disease",
    "Thomas splint applied",
    "Kelly clamp used",
    "Russell sign noted",
    "Ann Arbor staging IIA",
    "Sister Mary Joseph nodule",
    "Admitted to the Medical Ward",
    "Total White blood cell count 9.1",
    "Dr. Apgar score",
    "Crohn disease flare on Humira",
    "Cushing syndrome workup",
    "Started Eliquis and Lipitor.",
]
NAMES = [
    "Patient: Nguyễn Thị Hoa",
    "Dear Chukwuemeka,",
    "Signed: Aoife Ní Dhomhnaill, RN",
    "spoke with his wife Ayelet",
    "patient mary johnson presents",
    "J. K. Rowling reviewed the chart",
    "Case presentation: Tsosie, a 7-year-old with fever",
    "Okonkwo, Chidi seen in clinic",
    "Mr. Van der Berg reports chest pain",
    "Hunter Cook came in with his mother today.",
]
OTHER = [
    ("DL# D1234567", "LICENSE"),
    ("FL driver's license S123-456-78-901-0", "LICENSE"),
    ("Driver's license SMITHJ*123AB", "LICENSE"),
    ("NY driver license 123 456 789", "LICENSE"),
    ("DOB: 19620304", "DATE"),
    ("born 4th of March 1962", "DATE"),
    ("ninety-five years old", "AGE_OVER_89"),
    ("She is 93 and lives alone.", "AGE_OVER_89"),
    ("SSN 123 45 6789", "SSN"),
    ("call +44 20 7946 0958", "PHONE"),
    ("Chart #A00482913", "MRN"),
]


def test_screen_finds_unlisted_names_and_identifiers_and_leaves_eponyms_alone():
    found = phi.screen_texts(EPONYMS + NAMES + [t for t, _ in OTHER])
    assert {t: f for t, f in zip(EPONYMS, found[: len(EPONYMS)]) if f} == {}
    for text, f in zip(NAMES, found[len(EPONYMS) : len(EPONYMS) + len(NAMES)]):
        assert "NAME" in phi.types_of(f), text
    for (text, kind), f in zip(OTHER, found[len(EPONYMS) + len(NAMES) :]):
        assert kind in phi.types_of(f), text


def test_surrogate_dates_keep_their_format():
    for text in ("03/04/1962", "1962-03-04", "4th of March 1962", "March 4, 1962", "19620304", "Mar 4, 1962"):
        out = surrogates.redact_text(f"DOB {text}", [phi.Hit("t", "DATE", 4, 4 + len(text), 1.0)], KEY, "g")
        shape = lambda t: re.sub(r"\d+", "N", re.sub(r"[A-Z][a-z]+", "M", t))  # noqa: E731
        assert out != f"DOB {text}" and shape(out) == shape(f"DOB {text}"), (text, out)
