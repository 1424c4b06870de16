"""`clinitune serve`: the exported GGUF behind an OpenAI-compatible API, on the user's own machine.

The HTTP stack and the OpenAI routes are llama-cpp-python's maintained server (its `server` extra):
`/v1/chat/completions` (streaming too), `/v1/completions`, `/v1/models`. The chat template and stop token
are the ones stored in the GGUF, the ones export verified. What clinitune adds sits in front of it, in
`guard`, an ASGI layer every request passes:

- only the OpenAI routes and `/health` are open (no embeddings, tokenizer or legacy routes);
- a browser page from another origin is refused, so a website cannot reach a model on localhost;
- a request body over `max_request_bytes` is a 413, `max_tokens` over the cap a 400 (unset, it is the cap);
- every text that reaches the model passes the PHI screen (400 unless started with --allow-phi): messages,
  content parts, tool and function definitions, tool-call arguments, the prompt;
- `response_format` with a JSON Schema (OpenAI's `json_schema`, or llama.cpp's `json_object` with a schema)
  becomes the same bounded grammar eval and infer decode with, so the answer is valid JSON of that shape;
- with --phi-filter, identifiers in each answer are redacted before it leaves, counted in the log by type,
  the text never logged. A streamed answer is screened whole, so with the filter on it arrives at its end.

The API key (required off loopback) is checked first, before the body is read: 401 without it, so a client
without the key learns nothing about its payload; llama-cpp-python's own bearer check runs again behind.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from llama_cpp import Llama
from llama_cpp.llama_grammar import json_schema_to_gbnf
from llama_cpp.server.app import create_app
from llama_cpp.server.settings import ModelSettings, ServerSettings

from .data.privacy import phi, surrogates
from .errors import ClinituneError
from .layout import ExportDir, RunDir
from .models.structured import bounded_schema, check_grammar

log = logging.getLogger("clinitune.serve")

API_KEY_ENV = "CLINITUNE_API_KEY"
ROUTES = ("/v1/chat/completions", "/v1/completions", "/v1/models", "/health")
GENERATE = ("/v1/chat/completions", "/v1/completions")


@dataclass
class Limits:
    max_tokens: int = 512
    max_request_bytes: int = 1 << 20
    allow_phi: bool = False
    phi_filter: bool = False
    origins: tuple[str, ...] = ()  # browser origins allowed to call the server; none by default
    api_key: str | None = None  # checked before anything else is read; llama-cpp-python checks it again
    redacted: Counter = field(default_factory=Counter)  # identifiers taken out of answers, by type


def resolve_gguf(run: Path | None, gguf: Path | None) -> Path:
    """The file to serve: --gguf as given, or the GGUF a run's export wrote (export.json names it)."""
    if (run is None) == (gguf is None):
        raise ClinituneError("serve needs exactly one of --run DIR (an exported run) or --gguf FILE")
    if gguf is not None:
        if not Path(gguf).is_file():
            raise ClinituneError(f"{gguf}: no such GGUF file; check the path")
        return Path(gguf)
    record = ExportDir(RunDir(run).export_dir).read_record()
    path = record.gguf if record else None
    if not path or not Path(path).is_file():
        raise ClinituneError(f"{run}: no exported GGUF; run clinitune export --run {run} first, or pass --gguf FILE")
    return Path(path)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_key_for(host: str, api_key: str | None) -> str | None:
    """The key requests must carry: the flag, else $CLINITUNE_API_KEY; required when binding off loopback."""
    key = api_key or os.environ.get(API_KEY_ENV) or None
    if key is None and not is_loopback(host):
        raise ClinituneError(
            f"--host {host} is reachable from other machines: set an API key with --api-key or ${API_KEY_ENV}, "
            "or bind to 127.0.0.1"
        )
    return key


def _error(status: int, message: str, kind: str = "invalid_request_error") -> tuple[int, bytes]:
    return status, json.dumps({"error": {"message": message, "type": kind, "code": status}}).encode()


# Request fields that never reach the model as text: routing, sampling and output-shape settings. Everything
# else is screened, wherever it sits (tool and function definitions, tool-call arguments, content parts, names).
NOT_MODEL_TEXT = {
    "model",
    "role",
    "type",
    "stop",
    "user",
    "response_format",
    "tool_choice",
    "tool_call_id",
    "id",
    "logit_bias",
    "stream_options",
    "seed",
}


def request_texts(body) -> list[str]:
    """Every string of a request that can reach the model, found by walking the whole body."""
    if isinstance(body, str):
        return [body]
    if isinstance(body, list):
        return [t for item in body for t in request_texts(item)]
    if isinstance(body, dict):
        return [t for k, v in body.items() if k not in NOT_MODEL_TEXT for t in request_texts(v)]
    return []


def schema_of(response_format) -> dict | None:
    """The JSON Schema a response_format asks for, in OpenAI's spelling or llama.cpp's."""
    if not isinstance(response_format, dict):
        return None
    if response_format.get("type") == "json_schema":
        spec = response_format.get("json_schema") or {}
        return spec.get("schema") if isinstance(spec, dict) else None
    if response_format.get("type") == "json_object":
        return response_format.get("schema")
    return None


def rewrite_request(body: dict, limits: Limits, vocab: Llama) -> tuple[dict | None, tuple[int, bytes] | None]:
    """(the body the model server gets, None) or (None, the error answer)."""
    asked = body.get("max_tokens", body.get("max_completion_tokens"))
    if asked is not None and (not isinstance(asked, int) or asked > limits.max_tokens or asked < 1):
        return None, _error(400, f"max_tokens {asked!r}: this server answers with 1 to {limits.max_tokens} tokens")
    body = {k: v for k, v in body.items() if k != "max_completion_tokens"}
    body["max_tokens"] = asked or limits.max_tokens
    if not limits.allow_phi:
        found = phi.screen_texts(request_texts(body))
        kinds = sorted({f.type for fs in found for f in fs})
        if kinds:
            log.warning("request refused: the PHI screen found %s", ", ".join(kinds))
            return None, _error(400, f"the PHI screen found {', '.join(kinds)} in the request; remove the identifiers")
    schema = schema_of(body.get("response_format"))
    if schema is not None:
        try:
            grammar = json_schema_to_gbnf(json.dumps(bounded_schema(schema)))
            check_grammar(grammar, vocab)
        except (ClinituneError, ValueError, TypeError, KeyError, RecursionError, AssertionError) as exc:
            return None, _error(400, f"response_format: the JSON Schema can't be decoded to ({exc})")
        body.pop("response_format")
        body["grammar"] = grammar
    return body, None


def redact(text: str, limits: Limits) -> str:
    found = phi.screen(text)
    spans = surrogates.merge_spans(found)  # one identifier that several detectors found is counted once
    text = surrogates.redact_text(text, found, key=None, mask=True)
    if spans:
        kinds = Counter(kind for _, _, kind in spans)
        limits.redacted.update(kinds)
        log.warning("phi-filter: redacted %s in an answer", ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    return text


def filter_answer(raw: bytes, streamed: bool, limits: Limits) -> bytes:
    """The response with the PHI screen run over each answer: JSON, or a whole buffered event stream."""
    if not streamed:
        data = json.loads(raw)
        for choice in data.get("choices") or []:
            if isinstance(choice.get("message"), dict) and isinstance(choice["message"].get("content"), str):
                choice["message"]["content"] = redact(choice["message"]["content"], limits)
            if isinstance(choice.get("text"), str):
                choice["text"] = redact(choice["text"], limits)
        return json.dumps(data).encode()
    lines = raw.decode().split("\n")
    events = [(i, json.loads(line[6:])) for i, line in enumerate(lines) if line.startswith("data: {")]
    texts: dict[int, list[str]] = {}
    for _, ev in events:
        for c in ev.get("choices") or []:
            piece = (c.get("delta") or {}).get("content") or c.get("text") or ""
            texts.setdefault(c.get("index", 0), []).append(piece)
    clean = {k: redact("".join(v), limits) for k, v in texts.items()}
    sent: set[int] = set()
    for i, ev in events:
        for c in ev.get("choices") or []:
            k = c.get("index", 0)
            key = "text" if "text" in c else None
            piece = "" if k in sent else clean.get(k, "")
            if key:
                c["text"] = piece
            elif isinstance(c.get("delta"), dict) and "content" in c["delta"]:
                c["delta"]["content"] = piece
            else:
                continue
            sent.add(k)
        lines[i] = "data: " + json.dumps(ev)
    return "\n".join(lines).encode()


async def _read_body(receive, limit: int) -> bytes | None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body"):
            return body


async def _send(send, status: int, body: bytes, content_type: bytes = b"application/json") -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def key_matches(header: bytes, key: str) -> bool:
    """A bearer token compared in constant time."""
    scheme, _, token = header.decode(errors="replace").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())


def guard(app, limits: Limits, vocab: Llama):
    """The ASGI layer in front of the model server (see the module's docstring)."""

    async def asgi(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        path = scope["path"]
        headers = dict(scope.get("headers") or [])
        if path == "/health":
            return await _send(send, 200, b'{"status": "ok"}')
        if limits.api_key and not key_matches(headers.get(b"authorization", b""), limits.api_key):
            # First: a client without the key learns nothing about its payload (no 400, 403 or 413).
            return await _send(send, *_error(401, "missing or wrong API key; send Authorization: Bearer KEY"))
        origin = headers.get(b"origin", b"").decode()
        if origin and origin not in limits.origins:
            return await _send(send, *_error(403, f"origin {origin} may not call this server; see --cors-origin"))
        if path not in ROUTES:
            return await _send(send, *_error(404, f"{path}: not served; the routes are {', '.join(ROUTES)}"))
        if path not in GENERATE or scope["method"] != "POST":
            return await app(scope, receive, send)
        raw = await _read_body(receive, limits.max_request_bytes)
        if raw is None:
            return await _send(
                send, *_error(413, f"request larger than this server's limit of {limits.max_request_bytes:,} bytes")
            )
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return await _send(send, *_error(400, "the request body is not JSON"))
        if not isinstance(body, dict):
            return await _send(send, *_error(400, "the request body must be a JSON object"))
        body, refusal = rewrite_request(body, limits, vocab)
        if refusal:
            return await _send(send, *refusal)
        new = json.dumps(body).encode()
        scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k != b"content-length"]}
        scope["headers"].append((b"content-length", str(len(new)).encode()))
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": new, "more_body": False}

        if not limits.phi_filter:
            return await app(scope, replay, send)
        start, chunks = {}, []

        async def hold(message):
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    raw_out = b"".join(chunks)
                    ok = start.get("status") == 200
                    out = filter_answer(raw_out, bool(body.get("stream")), limits) if ok else raw_out
                    hdrs = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                    hdrs.append((b"content-length", str(len(out)).encode()))
                    await send({**start, "headers": hdrs})
                    await send({"type": "http.response.body", "body": out})

        return await app(scope, replay, hold)

    return asgi


def build_app(gguf: Path, api_key: str | None, limits: Limits, n_ctx: int = 2048, threads: int | None = None):
    """The guarded server app for one GGUF; the model loads here, once."""
    model = ModelSettings(
        model=str(gguf),
        model_alias=Path(gguf).stem,
        n_ctx=n_ctx,
        n_threads=threads or max(1, (os.cpu_count() or 2)),
        n_threads_batch=threads or max(1, (os.cpu_count() or 2)),
        verbose=False,
    )
    app = create_app(server_settings=ServerSettings(api_key=api_key), model_settings=[model])
    limits.api_key = api_key
    vocab = Llama(str(gguf), vocab_only=True, verbose=False)  # to check request grammars before they reach llama.cpp
    return guard(app, limits, vocab)


def serve(gguf: Path, host: str, port: int, api_key: str | None, limits: Limits, n_ctx: int) -> None:
    app = build_app(gguf, api_key, limits, n_ctx)
    log.info("serving %s on http://%s:%d/v1 (API key %s)", gguf.name, host, port, "required" if api_key else "off")
    uvicorn.run(app, host=host, port=port, log_level="warning")
    if limits.redacted:
        log.info("phi-filter: redacted %s", ", ".join(f"{k} {n}" for k, n in sorted(limits.redacted.items())))
