"""`clinitune serve`: a real server process on a loopback port, talked to with the official openai client."""

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jsonschema
import openai
import pytest
from typer.testing import CliRunner

from clinitune.cli import app
from clinitune.errors import ClinituneError
from clinitune.models.registry import ALIASES, DEFAULT_MODEL, alias_gguf
from clinitune.serve import Limits, filter_answer, resolve_gguf, rewrite_request

KEY = "test-key-123"
SCHEMA = {
    "type": "object",
    "properties": {"code": {"type": "string", "maxLength": 8}, "chronic": {"type": "boolean"}},
    "required": ["code", "chronic"],
    "additionalProperties": False,
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    gguf = alias_gguf(ALIASES[DEFAULT_MODEL])
    port = _free_port()
    cmd = [sys.executable, "-m", "clinitune.cli", "serve", "--gguf", str(gguf), "--port", str(port), "--api-key", KEY]
    cmd += ["--max-tokens", "64", "--max-request-bytes", "4096", "--phi-filter", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve exited {proc.returncode}: {proc.stdout.read()}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("serve did not answer /health in 120 s")
    yield base, gguf, proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def _client(base: str, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=120)


def test_openai_client_chat_stream_schema_and_models(server):
    base, gguf, _ = server
    c = _client(base)
    ask = [{"role": "user", "content": "What ICD-10 code represents essential hypertension?"}]
    r = c.chat.completions.create(model="any", messages=ask, max_tokens=32, temperature=0)
    assert r.choices[0].message.content.strip()
    assert r.choices[0].finish_reason in ("stop", "length") and r.usage.completion_tokens <= 32
    # the GGUF's own template and stop token: a short answer ends with "stop", not at the token budget
    short = [{"role": "user", "content": "Reply with the single word: yes"}]
    assert (
        c.chat.completions.create(model="any", messages=short, max_tokens=32, temperature=0).choices[0].finish_reason
        == "stop"
    )
    pieces = [
        ch.choices[0].delta.content or ""
        for ch in c.chat.completions.create(model="any", messages=ask, max_tokens=24, temperature=0, stream=True)
        if ch.choices
    ]
    assert "".join(pieces).strip()
    fmt = {"type": "json_schema", "json_schema": {"name": "dx", "schema": SCHEMA}}
    r = c.chat.completions.create(model="any", messages=ask, max_tokens=64, temperature=0, response_format=fmt)
    jsonschema.validate(json.loads(r.choices[0].message.content), SCHEMA)
    assert [m.id for m in c.models.list().data] == [Path(gguf).stem]
    # the unconstrained cap: no max_tokens given means the server's cap, not the context
    r = c.completions.create(model="any", prompt="ICD-10 stands for", temperature=0)
    assert r.usage.completion_tokens <= 64


def test_the_guard_refuses_what_it_should(server):
    base, _, _ = server
    ask = [{"role": "user", "content": "hello"}]
    with pytest.raises(openai.AuthenticationError):
        _client(base, "wrong").chat.completions.create(model="any", messages=ask, max_tokens=4)
    # The key is checked before anything else: without it, an oversized, PHI-laden body from a foreign origin is 401.
    big = {"messages": [{"role": "user", "content": "SSN 123-45-6789 " + "x" * 8000}]}
    for headers in ({}, {"Authorization": "Bearer wrong", "Origin": "https://x.io"}):
        assert httpx.post(f"{base}/v1/chat/completions", json=big, headers=headers).status_code == 401
    c = _client(base)
    with pytest.raises(openai.APIStatusError) as exc:
        c.chat.completions.create(model="any", messages=[{"role": "user", "content": "x" * 8000}], max_tokens=4)
    assert exc.value.status_code == 413 and "4,096 bytes" in exc.value.message
    with pytest.raises(openai.BadRequestError, match="1 to 64 tokens"):
        c.chat.completions.create(model="any", messages=ask, max_tokens=5000)
    phi_ask = [{"role": "user", "content": "Summarize: John Smith, SSN 123-45-6789, called from 617-555-0143."}]
    with pytest.raises(openai.BadRequestError, match="PHI screen found"):
        c.chat.completions.create(model="any", messages=phi_ask, max_tokens=4)
    # a web page from another origin can't reach a model on localhost; routes outside the API are closed
    h = {"Authorization": f"Bearer {KEY}"}
    page = httpx.post(f"{base}/v1/chat/completions", json={"messages": ask}, headers={**h, "Origin": "https://x.io"})
    assert page.status_code == 403
    assert httpx.post(f"{base}/v1/embeddings", json={"input": "hi"}, headers=h).status_code == 404


def test_every_text_a_request_carries_is_screened():
    tool = {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look up the chart of John Smith, SSN 123-45-6789",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    }
    clean = [{"role": "user", "content": "What is the usual adult dose of metformin?"}]
    cases = [
        {"messages": clean, "tools": [tool]},
        {"messages": clean, "functions": [tool["function"]]},
        {
            "messages": clean
            + [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"ssn": "123-45-6789"}'},
                        }
                    ],
                }
            ]
        },
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "SSN 123-45-6789"}]}]},
        {"messages": [{"role": "system", "content": "The patient is John Smith, MRN 00123456."}] + clean},
    ]
    for body in cases:
        new, refusal = rewrite_request(body, Limits(), vocab=None)
        assert new is None and refusal[0] == 400 and b"PHI screen" in refusal[1], body
    new, refusal = rewrite_request(
        {"messages": clean, "tools": [{**tool, "function": {"name": "dose"}}]}, Limits(), None
    )
    assert refusal is None and new["max_tokens"] == Limits().max_tokens


def test_server_stops_cleanly(server):
    _, _, proc = server
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0


def test_off_loopback_needs_a_key(monkeypatch):
    monkeypatch.delenv("CLINITUNE_API_KEY", raising=False)
    res = CliRunner().invoke(app, ["serve", "--gguf", str(alias_gguf(ALIASES[DEFAULT_MODEL])), "--host", "0.0.0.0"])
    assert res.exit_code == 2 and "set an API key with --api-key" in res.output


def test_phi_filter_redacts_answers_and_streams():
    limits = Limits(phi_filter=True)
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Call 617-555-0143 today."}}]}
    out = json.loads(filter_answer(json.dumps(answer).encode(), False, limits))
    assert "617-555-0143" not in out["choices"][0]["message"]["content"] and limits.redacted["PHONE"] == 1
    parts = ["Call 617-", "555-0143", " today."]
    events = [{"choices": [{"index": 0, "delta": {"content": p}}]} for p in parts]
    stream = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    text = filter_answer(stream.encode(), True, limits).decode()
    got = "".join(
        json.loads(line[6:])["choices"][0]["delta"]["content"]
        for line in text.split("\n")
        if line.startswith("data: {")
    )
    assert "555-0143" not in got and got.endswith(" today.") and limits.redacted["PHONE"] == 2


def test_a_schema_llama_cpp_cannot_express_is_a_400():
    from llama_cpp import Llama

    vocab = Llama(str(alias_gguf(ALIASES[DEFAULT_MODEL])), vocab_only=True, verbose=False)
    body = {"messages": [], "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "bogus"}}}}
    _, refusal = rewrite_request(body, Limits(allow_phi=True), vocab)
    assert refusal is not None and refusal[0] == 400


def test_run_resolves_to_the_gguf_its_export_wrote(tmp_path):
    with pytest.raises(ClinituneError, match="no exported GGUF; run clinitune export --run"):
        resolve_gguf(tmp_path, None)
    (tmp_path / "export").mkdir()
    f = tmp_path / "export" / "run-q4_k_m.gguf"
    f.write_bytes(b"GGUF")
    (tmp_path / "export" / "export.json").write_text(json.dumps({"gguf": str(f)}))
    assert resolve_gguf(tmp_path, None) == f
    with pytest.raises(ClinituneError, match="exactly one of --run"):
        resolve_gguf(tmp_path, f)
