"""Load check for `clinitune serve`: a bounded number of concurrent chat requests on loopback.

Starts the server on the embedded GGUF (or --gguf), sends --requests chat completions from --concurrency
clients at once with the official openai client, and prints requests/s, p50 and p99 latency and the failures
(there must be none). Run it alone: the server and its clients share these cores.

    .venv/bin/python bench/serve_load.py --requests 32 --concurrency 4
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai

from clinitune.models.registry import ALIASES, DEFAULT_MODEL, alias_gguf

PROMPTS = (
    "What ICD-10 code represents essential hypertension?",
    "List two first-line medications for type 2 diabetes.",
    "What does HbA1c measure?",
    "Give the ICD-10-CM code for asthma, unspecified.",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(gguf: Path, port: int, extra: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "clinitune.cli", "serve", "--gguf", str(gguf), "--port", str(port), "-q", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"serve exited {proc.returncode}: {proc.stderr.read()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("serve did not come up in 120 s")


def one(client: openai.OpenAI, i: int, max_tokens: int) -> tuple[float, str | None]:
    t = time.perf_counter()
    try:
        client.chat.completions.create(
            model="any",
            messages=[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
            max_tokens=max_tokens,
            temperature=0,
        )
        return time.perf_counter() - t, None
    except openai.OpenAIError as exc:
        return time.perf_counter() - t, type(exc).__name__


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf", type=Path, default=None)
    ap.add_argument("--requests", type=int, default=32)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--phi-filter", action="store_true", help="measure with the answer filter on")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "serve_load.json")
    args = ap.parse_args()
    gguf = args.gguf or alias_gguf(ALIASES[DEFAULT_MODEL])
    port = free_port()
    proc = start(gguf, port, ["--phi-filter"] if args.phi_filter else [])
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=300)
        one(client, 0, args.max_tokens)  # warm-up: the PHI screen's models load on the first request
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(lambda i: one(client, i, args.max_tokens), range(args.requests)))
        wall = time.perf_counter() - t0
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    lat = sorted(r[0] for r in results)
    failed = [r[1] for r in results if r[1]]
    row = {
        "gguf": gguf.name,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "max_tokens": args.max_tokens,
        "phi_filter": args.phi_filter,
        "requests_per_s": round(args.requests / wall, 3),
        "p50_s": round(statistics.median(lat), 3),
        "p99_s": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 3),
        "failed": len(failed),
        "server_exit": proc.returncode,
    }
    print("| gguf | requests | concurrency | max_tokens | phi filter | req/s | p50 s | p99 s | failed |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {row['gguf']} | {row['requests']} | {row['concurrency']} | {row['max_tokens']} | {row['phi_filter']} | "
        f"{row['requests_per_s']} | {row['p50_s']} | {row['p99_s']} | {row['failed']} |"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(row, indent=2) + "\n")
    if failed:
        raise SystemExit(f"{len(failed)} request(s) failed: {sorted(set(failed))}")


if __name__ == "__main__":
    main()
