"""The `clinitune` command line: one Typer app, one command per pipeline step.

Longer than 400 lines because each command is a page of option declarations with their help; the
work itself lives in the modules each command calls. Commands import those modules when they run,
so `clinitune --help` answers in a fraction of a second instead of loading torch.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from . import __version__, logs
from .errors import ClinituneError


class _Group(TyperGroup):
    """Bad input ends in one readable line and exit code 2, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ClinituneError as exc:
            typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
            raise typer.Exit(2) from None
        except OSError as exc:
            # The machine, not the input: every writer is atomic, so what was being written is not left behind.
            what = exc.filename or "a file"
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                msg = f"no space left writing {what} ({exc.strerror}); free some space and run the command again"
            elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                msg = f"{what}: {exc.strerror}; write somewhere you may, or change the file's permissions"
            else:
                raise
            typer.secho(f"error: {msg}", err=True, fg=typer.colors.RED)
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=_Group,
    help="Fine-tune open LLMs on healthcare data, locally: synth -> prepare -> train -> eval -> export.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

Seed = Annotated[int | None, typer.Option("--seed", help="Random seed (python, numpy, torch, data order).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Plain log lines, no progress bars, warnings only.")]
Overrides = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config key, e.g. --set training.learning_rate=1e-4 (repeatable)."),
]


# Flags that stand for config keys, per command: the one table that turns a flag into the `--set` it is
# shorthand for, so a flag and its key can never disagree and a run's config.yaml records either.
FLAG_KEYS = {
    "prepare": {
        k: f"prepare.{k}"
        for k in ("source", "db", "path", "out", "tasks", "max_examples", "augment", "skip_invalid", "canaries")
        + ("codebook", "phi_action", "group_by", "field_map", "table", "split", "key_file", "seed")
    },
    "train": {"seed": "training.seed", "allow_phi": "data.allow_phi", "minutes": "training.max_minutes"},
    "eval": {
        "constrain": "eval.constrain",
        "seed": "eval.seed",
        "allow_phi": "data.allow_phi",
        "baseline": "eval.baselines",
        "limit": "eval.limit",
        "few_shot_k": "eval.few_shot_k",
        "batch_size": "eval.batch_size",
        "backend": "eval.backend",
    },
    "infer": {"truncate": "generation.truncate_prompt"},
    "serve": {
        "host": "serve.host",
        "port": "serve.port",
        "max_tokens": "serve.max_tokens",
        "max_request_bytes": "serve.max_request_bytes",
        "n_ctx": "serve.n_ctx",
        "phi_filter": "serve.phi_filter",
        "cors_origin": "serve.cors_origins",
        "allow_phi": "data.allow_phi",
    },
    "export": {
        "format": "export.format",
        "quantize": "export.quantize",
        "out": "export.out_dir",
        "lora_gguf": "export.lora_gguf",
    },
}


def _sets(command: str, overrides: list[str] | None, **flags) -> list[str]:
    """`--set` values, then each flag given, written as the `--set` it stands for (so flags win)."""
    out = list(overrides or [])
    for name, value in flags.items():
        if value is None or value is False:
            continue
        # a text flag (a path, a URL) is quoted, so that YAML reads it back as the same text
        text = json.dumps(str(value) if isinstance(value, Path) else value)
        out.append(f"{FLAG_KEYS[command][name]}={text}")
    return out


def _run_config(run: Path | None, sets: list[str]):
    """A run's own config (its config.yaml) with `sets` applied; the defaults without a run."""
    from .config import load_config
    from .layout import RunDir

    return RunDir(run).read_config(sets) if run is not None else load_config(None, sets)


def _setup_logging(quiet: bool) -> None:
    logs.setup(quiet)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"clinitune {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """clinitune: local, privacy-first fine-tuning for healthcare."""


@app.command()
def download(
    model: Annotated[
        str, typer.Argument(help="Alias (smollm2-135m-instruct), hub id (org/name), local HF dir, or .gguf file.")
    ] = "smollm2-135m-instruct",
    out: Annotated[
        Path | None, typer.Option("--out", help="Checkpoint dir to write; default: the clinitune cache.")
    ] = None,
    revision: Annotated[str | None, typer.Option(help="Hub revision (branch, tag or commit).")] = None,
    allow_pickle: Annotated[
        bool, typer.Option("--allow-pickle", help="Accept .bin/.pt pickle weights (they can run code).")
    ] = False,
    quiet: Quiet = False,
) -> None:
    """Fetch or import a base model into a plain HF safetensors checkpoint; prints its directory last."""
    _setup_logging(quiet)
    from .models.registry import resolve_model

    path = resolve_model(model, out=out, allow_pickle=allow_pickle, revision=revision)
    typer.echo(str(path))


@app.command()
def synth(
    db: Annotated[str, typer.Option(help="SQLAlchemy URL of the database to create.")] = "sqlite:///data/clinic.db",
    patients: Annotated[int, typer.Option(min=1, help="Number of synthetic patients.")] = 500,
    export: Annotated[
        tuple[str, Path] | None,
        typer.Option(help="Also write the database out: --export csv DIR or --export fhir DIR."),
    ] = None,
    seed: Seed = None,
    quiet: Quiet = False,
) -> None:
    """Write a clinically coherent synthetic patient database (SQLite or PostgreSQL)."""
    _setup_logging(quiet)
    from .data.records.sources import export as export_db
    from .data.records.synth import write_database

    counts = write_database(db, patients, 42 if seed is None else seed, progress=not quiet)
    typer.echo("synth: " + ", ".join(f"{n} {t}" for t, n in counts.items()))
    if export:
        fmt, target = export
        n = export_db(db, fmt, target, progress=not quiet)
        typer.echo(f"exported {n} patients as {fmt} to {target}")
    typer.echo(db)


PhiAction = Annotated[
    str | None,
    typer.Option(
        "--phi-action",
        help="What an identifier found by the PHI screen does: quarantine "
        "(the example goes to quarantine.jsonl), redact (replaced by a consistent surrogate), "
        "mask (replaced by its kind in brackets: [NAME], [DATE]), or fail (exit 2, nothing written).",
    ),
]
GroupBy = Annotated[
    str | None,
    typer.Option(
        "--group-by",
        help="Field naming each example's patient (e.g. patient_id): "
        "one patient's examples never straddle train and test.",
    ),
]
FieldMapFile = Annotated[
    Path | None,
    typer.Option(
        "--map",
        help="YAML file naming where your records keep each field (sex: demographics.gender, "
        "lab_results.name: analyte, ...); see --suggest-map.",
    ),
]
SuggestMap = Annotated[
    Path | None,
    typer.Option(
        "--suggest-map",
        help="Print a starting --map file for this CSV, JSON or JSONL file and exit (redirect it to a file).",
    ),
]
KeyFile = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        help="The data set's secret key (created 0600 when absent; keep it outside --out). Pseudonyms, "
        "surrogates, date shifts and patient groups derive from it; without it a re-run differs.",
    ),
]
Canaries = Annotated[
    int | None,
    typer.Option(
        min=0, help="Plant K random secrets in train (repeated 1, 4, 16, 32 times) for eval's exposure probe."
    ),
]
Codebook = Annotated[
    bool | None,
    typer.Option(
        help="Add the ICD-10-CM code table to train as reference data "
        "(default: on for database and FHIR records, off for your own examples)."
    ),
]
Split = Annotated[
    str | None,
    typer.Option(
        "--split",
        help="Train, eval and test shares of the patients (or groups), e.g. 0.6,0.1,0.3 for a larger test set.",
    ),
]


@app.command()
def prepare(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config with a prepare: section.")] = None,
    overrides: Overrides = None,
    source: Annotated[str | None, typer.Option(help="database, csv, jsonl, json or fhir.")] = None,
    db: Annotated[str | None, typer.Option(help="SQLAlchemy URL, for --source database.")] = None,
    path: Annotated[Path | None, typer.Option(help="Input file or dir, for file sources.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output dir for train/eval/test JSONL, manifest and report.")] = None,
    tasks: Annotated[str | None, typer.Option(help="Comma-separated task names; default: all.")] = None,
    max_examples: Annotated[int | None, typer.Option(min=1)] = None,
    augment: Annotated[bool, typer.Option(help="Rephrase instructions and vary demographics.")] = False,
    skip_invalid: Annotated[
        bool, typer.Option(help="Continue past bad records, writing them to a rejects file.")
    ] = False,
    canaries: Canaries = None,
    codebook: Codebook = None,
    phi_action: PhiAction = None,
    group_by: GroupBy = None,
    field_map: FieldMapFile = None,
    suggest_map: SuggestMap = None,
    table: Annotated[
        str | None,
        typer.Option(help="A table of --db that is not clinitune's own: records with --map, else Q/A pairs."),
    ] = None,
    split: Split = None,
    key_file: KeyFile = None,
    seed: Seed = None,
    quiet: Quiet = False,
) -> None:
    """Turn patient records into PHI-screened, split, versioned instruction data."""
    _setup_logging(quiet)
    from .config import load_config
    from .data.prepare import options_of
    from .data.prepare import prepare as run_prepare
    from .data.privacy import keys
    from .data.records.suggest import suggest_for

    if suggest_map is not None:
        typer.echo(suggest_for(suggest_map), nl=False)
        return
    flags = dict(source=source, db=db, path=path, out=out, tasks=tasks, max_examples=max_examples, augment=augment)
    flags.update(skip_invalid=skip_invalid, canaries=canaries, phi_action=phi_action, group_by=group_by)
    flags.update(field_map=field_map, table=table, split=split, key_file=key_file, seed=seed)
    # --no-codebook is a setting, not an absent flag
    flags["codebook"] = None if codebook is None else str(codebook).lower()
    c = load_config(config, _sets("prepare", overrides, **flags)).prepare
    m = run_prepare(
        **options_of(c),
        progress=not quiet,
        key=keys.load_or_create(Path(c.key_file), guarded=Path(c.out)) if c.key_file else None,
    )
    if not c.key_file:
        typer.echo("  key: one-time (pseudonyms and surrogates can't be repeated; --key-file FILE keeps one)")
    _print_prepared(m, c.phi_action)
    typer.echo(c.out)


def _print_prepared(m, phi_action: str) -> None:
    from .data.prepare import COUNT_KEYS

    c = m.counts
    for key in COUNT_KEYS:
        if c.get(key) is not None:
            typer.echo(f"  {key:<18} {c[key]}")
    typer.echo("  " + ", ".join(f"{s}: {n}" for s, n in c["total"].items()))
    sc = m.source_counts
    if sc:
        parts = [f"{sc['items_read']} read", f"{sc['items_used']} used"]
        parts += [f"{n} rejected ({k})" for k, n in sc["rejected"].items()]
        parts += [f"{n} skipped ({k})" for k, n in sc["skipped"].items()]
        typer.echo("  source: " + ", ".join(parts))
        for k, n in sc["notes"].items():
            typer.echo(f"  note: {k} ({n})")
    if m.phi["examples_by_type"]:
        typer.echo(
            f"  PHI findings by type ({phi_action}): "
            + ", ".join(f"{t} {n}" for t, n in m.phi["examples_by_type"].items())
        )


@app.command()
def validate(
    file: Annotated[Path | None, typer.Argument(help="Instruction or chat JSONL to check.")] = None,
    db: Annotated[str | None, typer.Option(help="Check a synthetic database's clinical coherence instead.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print findings as JSON.")] = False,
    quiet: Quiet = False,
) -> None:
    """Check instruction data (quality gate + PHI screen) or a database (coherence rules)."""
    _setup_logging(quiet)
    if db is not None:
        _validate_db(db, json_out)
        return
    if file is None:
        raise ClinituneError("validate needs FILE.jsonl (instruction or chat data) or --db URL (a clinical database)")
    _validate_file(file, json_out)


def _validate_file(path: Path, json_out: bool) -> None:
    from .data.prepare import validate_file

    r = validate_file(path)
    if json_out:
        typer.echo(json.dumps(r))
    else:
        typer.echo(
            f"{path}: {r['examples']} examples, {len(r['invalid'])} failing the quality gate, "
            f"{len(r['phi'])} with PHI, {len(r['duplicates'])} duplicates"
        )
        for item in r["invalid"]:
            typer.echo(f"  {path}:{item['line']}: " + "; ".join(item["reasons"]))
        for item in r["phi"]:
            typer.echo(f"  {path}:{item['line']}: PHI found: {', '.join(item['types'])}")
        for item in r["duplicates"]:
            same = (
                "the same text" if item["kind"] == "exact" else "the same words (case, punctuation and spacing aside)"
            )
            typer.echo(
                f"  {path}:{item['line']}: duplicate of line {item['first']}, {same}; prepare keeps only the first"
            )
    # 0: clean; 1: findings, each named above; 2 (a one-line error): the file could not be checked at all
    if r["invalid"] or r["phi"] or r["duplicates"]:
        raise typer.Exit(1)


def _validate_db(url: str, json_out: bool) -> None:
    from .data.records.coherence import check_records, summarize
    from .data.records.sources import iter_database

    n, violations = check_records(iter_database(url))
    if json_out:
        typer.echo(json.dumps({"records": n, "violations": [v.__dict__ for v in violations]}, default=str))
    else:
        typer.echo(f"checked {n} patient records: {len(violations)} coherence violation(s)")
        for rule, count in sorted(summarize(violations).items()):
            typer.echo(f"  {rule:<24} {count}")
        for v in violations[:20]:
            typer.echo(f"  {v}")
    if violations:
        raise typer.Exit(1)


@app.command()
def train(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML config (see configs/).")],
    overrides: Overrides = None,
    resume: Annotated[bool, typer.Option(help="Continue from the newest checkpoint in output_dir.")] = False,
    nproc: Annotated[int, typer.Option(min=1, help="Processes for DDP through accelerate.")] = 1,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate the config, print it resolved, and stop.")
    ] = False,
    force: Annotated[bool, typer.Option(help="Train even if the estimate says it will not fit.")] = False,
    allow_phi: Annotated[
        bool,
        typer.Option("--allow-phi", help="Train on a file the PHI screen flags (data.allow_phi); recorded in the run."),
    ] = False,
    minutes: Annotated[
        float | None,
        typer.Option(help="Train for this many minutes: steps and schedule planned from a measured step time."),
    ] = None,
    seed: Seed = None,
    quiet: Quiet = False,
) -> None:
    """Fine-tune with LoRA, QLoRA or full parameters from a YAML config."""
    _setup_logging(quiet)
    from .config import config_warnings, load_config, to_yaml

    cfg = load_config(config, _sets("train", overrides, seed=seed, allow_phi=allow_phi, minutes=minutes))
    for w in config_warnings(cfg):
        typer.secho(f"warning: {w}", err=True, fg=typer.colors.YELLOW)
    if dry_run:
        typer.echo(to_yaml(cfg), nl=False)
        typer.echo(f"# {config}: valid", err=True)
        return
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        args = ["train", "--config", str(config), *[a for s in (overrides or []) for a in ("--set", s)]]
        args += (["--resume"] if resume else []) + (["--force"] if force else []) + (["--quiet"] if quiet else [])
        args += ["--allow-phi"] if allow_phi else []
        args += ["--minutes", str(minutes)] if minutes else []
        args += ["--seed", str(seed)] if seed is not None else []
        raise typer.Exit(_launch(nproc, args))
    from .data.manifest import phi_gate
    from .train.estimate import estimate as run_estimate
    from .train.estimate import refuse_if_too_big
    from .train.loop import train as run_train

    for key, data_path in (("data.train", cfg.data.train), ("data.eval", cfg.data.eval)):
        if data_path and Path(data_path).is_file():
            phi_gate(data_path, cfg.data.allow_phi, key)  # refuse before the estimate loads a model
    if not force:
        refuse_if_too_big(run_estimate(cfg))
    summary = run_train(cfg, resume=resume, quiet=quiet)
    if summary is not None:  # rank 0 reports
        typer.echo(f"best eval loss {summary.best_eval_loss} at step {summary.best_step}; {summary.steps} steps")
        typer.echo(summary.output)


def _launch(nproc: int, args: list[str]) -> int:
    """One process per rank through torch's elastic launcher (what torchrun and `accelerate launch` run);
    the loop reads WORLD_SIZE/RANK and sums gradients over gloo (CPU) or NCCL (CUDA)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    # The launcher would give each rank 1 thread; on a CPU box that leaves all but nproc cores idle.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cores // nproc)))
    # A failing rank prints its own error; the launcher's per-rank report and traceback would bury it.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    try:
        run(parse_args(["--standalone", f"--nproc_per_node={nproc}", "-m", "clinitune.cli", *args]))
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        how = (
            f"was killed by {failure.signal_name()}" if failure.exitcode < 0 else f"exited with code {failure.exitcode}"
        )
        typer.secho(f"error: rank {rank} of {nproc} {how}; its own message is above", err=True, fg=typer.colors.RED)
        return failure.exitcode if failure.exitcode > 0 else 1
    return 0


@app.command()
def estimate(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML config.")],
    overrides: Overrides = None,
    measure: Annotated[bool, typer.Option(help="Time a few real steps instead of predicting.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Also print the estimate as JSON.")] = False,
    quiet: Quiet = False,
) -> None:
    """Predict peak memory and time per epoch for a config."""
    _setup_logging(quiet)
    from .config import load_config
    from .train.estimate import estimate as run_estimate
    from .train.estimate import format_estimate, measure_tokens_per_s

    cfg = load_config(config, list(overrides or []))
    e = run_estimate(cfg, measured_tokens_per_s=measure_tokens_per_s(cfg) if measure else None)
    typer.echo(format_estimate(e))
    if json_out:
        typer.echo(json.dumps(e.to_dict()))


def baseline_list(flag: str | None) -> list[str] | None:
    """`--baseline zero-shot,few_shot` as eval.baselines; `none` for no baseline."""
    if flag is None:
        return None
    return [b.strip().replace("_", "-") for b in flag.split(",") if b.strip() and b.strip() != "none"]


@app.command(name="eval")
def eval_(
    data: Annotated[Path, typer.Option(help="Test JSONL from prepare.")] = Path("data/prepared/test.jsonl"),
    out: Annotated[Path, typer.Option(help="Report dir.")] = Path("outputs/eval"),
    run: Annotated[
        Path | None, typer.Option(help="A training run dir; its config's eval: section sets the defaults.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Base model, if no --run.")] = None,
    adapter: Annotated[Path | None, typer.Option(help="PEFT adapter dir.")] = None,
    gguf: Annotated[
        Path | None,
        typer.Option(
            help="Also score this GGUF through llama.cpp (with --run: paired against the HF model it came from)."
        ),
    ] = None,
    constrain: Annotated[
        bool,
        typer.Option("--constrain", help="Also score JSON answers held to their schema, HF and GGUF (eval.constrain)."),
    ] = False,
    compare: Annotated[
        Path | None,
        typer.Option(
            help="Another run of the same base model (e.g. the same budget without DP): scored and privacy-probed "
            "on the same examples, side by side with --run."
        ),
    ] = None,
    baseline: Annotated[str | None, typer.Option(help="zero-shot,few-shot or none (eval.baselines).")] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            min=1, help="Sample N/tasks examples per task; tasks with short answers get up to 4x that (eval.limit)."
        ),
    ] = None,
    few_shot_k: Annotated[
        int | None,
        typer.Option("--few-shot-k", min=1, help="Train examples in each few-shot prompt (eval.few_shot_k)."),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Prompts generated together (eval.batch_size).")] = None,
    backend: Annotated[str | None, typer.Option(help="hf or llama_cpp: who writes the replies (eval.backend).")] = None,
    db: Annotated[
        str | None,
        typer.Option(help="Source DB for text_to_sql and the extraction probe; default: from the data manifest."),
    ] = None,
    allow_phi: Annotated[
        bool,
        typer.Option(
            "--allow-phi", help="Evaluate on a file the PHI screen flags (data.allow_phi); recorded in the results."
        ),
    ] = False,
    overrides: Overrides = None,
    seed: Seed = None,
    quiet: Quiet = False,
) -> None:
    """Score a model on healthcare tasks against zero- and few-shot baselines, with privacy probes."""
    _setup_logging(quiet)
    from .eval.report import console_table, verdict_line
    from .eval.run import evaluate
    from .layout import EvalDir

    cfg = _run_config(
        run,
        _sets(
            "eval",
            overrides,
            seed=seed,
            allow_phi=allow_phi,
            baseline=baseline_list(baseline),
            limit=limit,
            few_shot_k=few_shot_k,
            batch_size=batch_size,
            backend=backend,
            constrain=constrain,
        ),
    )
    ec = cfg.eval
    results = evaluate(
        data=data,
        out=out,
        run=run,
        model=model,
        adapter=adapter,
        gguf=gguf,
        constrain=ec.constrain,
        baselines=[b.replace("-", "_") for b in ec.baselines],
        limit=ec.limit,
        seed=ec.seed,
        k=ec.few_shot_k,
        db=db,
        batch_size=ec.batch_size,
        quiet=quiet,
        allow_phi=cfg.data.allow_phi,
        compare=compare,
        cache_baselines=ec.cache_baselines,
        backend=ec.backend,
    )
    for line in console_table(results):
        typer.echo(line)
    typer.echo(verdict_line(results))
    typer.echo(str(EvalDir(out).report))


@app.command()
def serve(
    run: Annotated[Path | None, typer.Option(help="An exported run: serves the GGUF its export wrote.")] = None,
    gguf: Annotated[Path | None, typer.Option(help="A GGUF file to serve.")] = None,
    config: Annotated[Path | None, typer.Option(help="A config whose serve section sets the defaults.")] = None,
    host: Annotated[str | None, typer.Option(help="Bind address (serve.host, default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (serve.port, default 8000).")] = None,
    api_key: Annotated[
        str | None,
        typer.Option(help="Bearer key requests must carry; required off loopback (or set $CLINITUNE_API_KEY)."),
    ] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Cap on a request's max_tokens (serve.max_tokens).")] = None,
    max_request_bytes: Annotated[
        int | None, typer.Option(help="Largest request body (serve.max_request_bytes).")
    ] = None,
    n_ctx: Annotated[int | None, typer.Option(help="Context length (serve.n_ctx).")] = None,
    phi_filter: Annotated[
        bool, typer.Option("--phi-filter", help="Redact identifiers in each answer before it leaves the server.")
    ] = False,
    allow_phi: Annotated[
        bool, typer.Option("--allow-phi", help="Let requests the PHI screen flags reach the model.")
    ] = False,
    cors_origin: Annotated[
        list[str] | None, typer.Option(help="A browser origin allowed to call the server (repeatable).")
    ] = None,
    overrides: Overrides = None,
    quiet: Quiet = False,
) -> None:
    """An OpenAI-compatible API (/v1/chat/completions, /v1/completions, /v1/models, /health) over a GGUF."""
    _setup_logging(quiet)
    from .config import load_config
    from .serve import Limits, api_key_for, resolve_gguf
    from .serve import serve as run_server

    path = resolve_gguf(run, gguf)
    sets = _sets(
        "serve",
        overrides,
        host=host,
        port=port,
        max_tokens=max_tokens,
        max_request_bytes=max_request_bytes,
        n_ctx=n_ctx,
        phi_filter=phi_filter,
        cors_origin=cors_origin or None,
        allow_phi=allow_phi,
    )
    cfg = load_config(config, sets) if config else _run_config(run, sets)
    s = cfg.serve
    key = api_key_for(s.host, api_key)
    limits = Limits(s.max_tokens, s.max_request_bytes, cfg.data.allow_phi, s.phi_filter, tuple(s.cors_origins))
    run_server(path, s.host, s.port, key, limits, s.n_ctx)


@app.command()
def infer(
    prompt: Annotated[str | None, typer.Option(help="One prompt.")] = None,
    file: Annotated[Path | None, typer.Option(help="JSONL of prompts; outputs go to --out as JSONL.")] = None,
    chat: Annotated[bool, typer.Option(help="Interactive chat.")] = False,
    model: Annotated[str | None, typer.Option(help="HF model (alias, dir, hub id).")] = None,
    adapter: Annotated[Path | None, typer.Option(help="PEFT adapter dir.")] = None,
    run: Annotated[Path | None, typer.Option(help="A training run dir.")] = None,
    gguf: Annotated[Path | None, typer.Option(help="A GGUF file, run with llama.cpp.")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Config for generation settings.")] = None,
    json_schema: Annotated[
        Path | None,
        typer.Option(
            "--json-schema",
            help="A JSON Schema file: every answer is decoded as valid JSON of that shape (HF or --gguf).",
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output JSONL for --file.")] = None,
    allow_phi: Annotated[
        bool, typer.Option("--allow-phi", help="Send prompts the PHI screen flags to the model anyway.")
    ] = False,
    truncate: Annotated[
        bool,
        typer.Option(
            "--truncate",
            help="Cut the end of a prompt too long for the context, with a warning, instead of refusing it "
            "(generation.truncate_prompt).",
        ),
    ] = False,
    seed: Seed = None,
    quiet: Quiet = False,
) -> None:
    """Generate with an HF model or a GGUF through llama.cpp, streaming tokens; every prompt passes the PHI screen."""
    _setup_logging(True)
    from .config import load_config
    from .data.example import parse_prompt
    from .infer import read_prompts, run_file, screen_prompt
    from .models.chat import chat_backend as backend

    if sum(x is not None and x is not False for x in (prompt, file, chat or None)) != 1:
        raise ClinituneError("infer needs exactly one of --prompt TEXT, --file PROMPTS.jsonl or --chat")
    sets = _sets("infer", None, truncate=truncate)
    gen = (load_config(config, sets) if config else _run_config(run, sets)).generation
    if out is not None and out.is_dir():
        raise ClinituneError(f"--out {out}: is a directory; give the JSONL file to write the responses to")
    schema = _read_schema(json_schema) if json_schema else None
    if seed is not None:
        from transformers import set_seed

        set_seed(seed)  # python, numpy and torch: sampling (temperature > 0) repeats
    if prompt is not None:
        messages = parse_prompt(prompt, "--prompt")
        screen_prompt(messages, "--prompt", allow_phi)  # before a model loads
        backend(run, model, adapter, gguf, schema).chat(messages, gen, stream=True)
    elif file is not None:
        target = out or file.with_name(file.stem + ".outputs.jsonl")
        items = read_prompts(file, allow_phi)
        n = run_file(backend(run, model, adapter, gguf, schema), items, target, gen)
        typer.echo(f"{n} responses written to {target}")
    else:
        b = backend(run, model, adapter, gguf, schema)
        history: list[dict] = []
        typer.echo("clinitune chat: empty line or Ctrl-D to quit", err=True)
        while True:
            try:
                line = input("> ").strip()
            except EOFError:
                break
            if not line:
                break
            try:
                screen_prompt([{"role": "user", "content": line}], "this message", allow_phi)
            except ClinituneError as exc:
                typer.secho(f"not sent: {exc}", err=True, fg=typer.colors.YELLOW)
                continue
            history.append({"role": "user", "content": line})
            history.append({"role": "assistant", "content": b.chat(history, gen, stream=True)})


def _read_schema(path: Path) -> dict:
    if not path.is_file():
        raise ClinituneError(f"{path}: JSON Schema file not found")
    try:
        schema = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ClinituneError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(schema, dict):
        raise ClinituneError(f"{path}: a JSON Schema is an object, got {type(schema).__name__}")
    return schema


@app.command()
def export(
    run: Annotated[
        Path | None, typer.Option(help="Training run dir to export; its config's export: section sets the defaults.")
    ] = None,
    format: Annotated[str | None, typer.Option("--format", help="hf or gguf (export.format).")] = None,
    quantize: Annotated[
        str | None, typer.Option(help="f16, bf16, q8_0, q4_k_m, q5_k_m or q6_k (export.quantize).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output dir (export.out_dir; default RUN/export).")] = None,
    lora_gguf: Annotated[
        bool, typer.Option("--lora-gguf", help="Also export the adapter alone as a GGUF LoRA (export.lora_gguf).")
    ] = False,
    overrides: Overrides = None,
    quiet: Quiet = False,
) -> None:
    """Merge, convert to GGUF, quantize with llama.cpp, verify, and write an Ollama Modelfile."""
    _setup_logging(quiet)
    from .export.run import export as run_export

    if run is None:
        raise ClinituneError("export needs --run RUN_DIR (a finished clinitune train output_dir)")
    cfg = _run_config(
        run,
        _sets("export", overrides, format=format, quantize=quantize and quantize.lower(), out=out, lora_gguf=lora_gguf),
    )
    result = run_export(run, cfg)
    for kind, v in (result.verify or {}).items():
        typer.echo(
            f"  {kind:<8} {v['size_mb']:>8} MB  top-1 agreement {v['top1_agreement']} [{v['top1_ci95'][0]}, "
            f"{v['top1_ci95'][1]}] (floor {v['floor']})  mean KL {v['mean_kl']}  {v['tokens_per_s']} tok/s"
        )
    if result.modelfile:
        typer.echo(f"  ollama create {cfg.export.ollama_name or 'clinitune'} -f {result.modelfile}")
    if result.lora_gguf:
        typer.echo(f"  LoRA adapter {result.lora_gguf}; ollama create clinitune-lora -f {result.modelfile_lora}")
    typer.echo(result.gguf or result.merged)


@app.command()
def quickstart(
    workdir: Annotated[Path, typer.Option(help="Where every artifact goes.")] = Path("work/quickstart"),
    patients: Annotated[
        int | None, typer.Option(min=10, help="Synthetic patients to generate (default: the profile's).")
    ] = None,
    profile: Annotated[str, typer.Option(help="fast (minutes) or full (longer, better metrics).")] = "fast",
    steps: Annotated[int | None, typer.Option(min=1, help="Training steps (default: the profile's).")] = None,
    eval_limit: Annotated[
        int | None,
        typer.Option(min=8, help="Eval sample budget, as clinitune eval --limit (default: the profile's)."),
    ] = None,
    minutes: Annotated[
        float | None, typer.Option(help="Training budget in minutes, instead of a step count (training.max_minutes).")
    ] = None,
    fresh: Annotated[bool, typer.Option(help="Redo every step, ignoring finished ones.")] = False,
    seed: Seed = None,
    quiet: Quiet = False,
) -> None:
    """Database -> PHI-screened data -> LoRA on SmolLM2 -> eval vs base -> GGUF + Ollama Modelfile."""
    _setup_logging(quiet)
    from .quickstart import run_quickstart

    run_quickstart(
        workdir=workdir,
        patients=patients,
        profile=profile,
        fresh=fresh,
        seed=42 if seed is None else seed,
        steps=steps,
        eval_limit=eval_limit,
        minutes=minutes,
    )


def main(args: list[str] | None = None, prog_name: str | None = None) -> None:
    import faulthandler

    # A crash in native code (a worker aborting in a collective, a segfault in a kernel) prints every
    # thread's Python stack, so the report names the line, not only the signal.
    faulthandler.enable(all_threads=True)
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        app(args=args, prog_name=prog_name)
        return
    # A launched rank leaves without interpreter teardown once its work is written (or its error
    # printed): there the destructors of gloo's and DeepSpeed's native threads race, and can abort a
    # finished run with SIGABRT ("terminate called without an active exception"), failing the launch.
    try:
        app(args=args, prog_name=prog_name)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        if isinstance(exc.code, str):
            sys.stderr.write(exc.code + "\n")
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
