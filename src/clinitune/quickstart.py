"""`clinitune quickstart`: the main job, end to end, with a timed summary.

Each step is a function of the workdir; steps whose commands have not landed yet are listed
as pending so the chain runs cleanly today and grows one step per issue.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from .errors import ClinituneError
from .paths import atomic_write_text

PROFILES = ("fast", "full")


def run_quickstart(workdir: Path, patients: int, profile: str, fresh: bool, seed: int) -> dict:
    if profile not in PROFILES:
        raise ClinituneError(f"--profile {profile!r}: expected one of {', '.join(PROFILES)}")
    from .models.registry import resolve_model

    workdir.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    paths: dict[str, str | None] = {k: None for k in ("db", "data", "run", "eval", "gguf", "modelfile", "report")}
    t_all = time.perf_counter()

    t = time.perf_counter()
    base = resolve_model("smollm2-135m-instruct")
    seconds["download"] = round(time.perf_counter() - t, 2)
    paths["base_model"] = str(base)

    pending = ["synth", "prepare", "estimate", "train", "eval", "export", "ask"]
    seconds["total"] = round(time.perf_counter() - t_all, 2)
    summary = {"seconds": seconds, "paths": paths, "metrics": {}, "pending": pending, "seed": seed, "profile": profile}
    atomic_write_text(workdir / "summary.json", json.dumps(summary, indent=2))

    typer.echo("\nclinitune quickstart")
    for step, s in seconds.items():
        typer.echo(f"  {step:<10} {s:>8.2f} s")
    typer.echo(f"  base model: {base}")
    typer.echo(f"  not yet available: {', '.join(pending)}")
    typer.echo(f"  summary: {workdir / 'summary.json'}")
    return summary
