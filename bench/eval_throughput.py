"""Evaluation throughput, side by side: the fine-tuned model's replies through each generation backend.

Same examples (eval's own sample at --limit, seed 42), same zero-shot prompts, same per-task token
budgets, same metrics; only the backend differs: transformers' batched greedy decoding with the KV
cache (what `clinitune eval` runs for HF models) against llama.cpp on the exported GGUF files, one
sequence at a time and 16 sequences batched (what `eval --gguf` runs). Run it alone on an idle
machine, after `clinitune quickstart --workdir DIR`:

    .venv/bin/python bench/eval_throughput.py --workdir work/quickstart --limit 16
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from clinitune.eval import metrics as M
from clinitune.eval.run import budgets, select, sqlite_copy
from clinitune.layout import DataDir, RunDir
from clinitune.models.generate import generate, llama_batched_greedy, llama_greedy, load_for_inference, load_llama


def score(by_task, replies: dict[str, str], data_dir: Path) -> float:
    """Mean over tasks of each task's mean primary metric."""
    per_task = []
    with sqlite_copy(data_dir, None) as conn:
        for task, exs in by_task.items():
            key = M.PRIMARY[task]
            per_task.append(sum(M.score(task, replies[e.id], e, conn).get(key, 0.0) for e in exs) / len(exs))
    return sum(per_task) / len(per_task)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path("work/quickstart"))
    ap.add_argument("--limit", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    data, run = DataDir(args.workdir / "data"), RunDir(args.workdir / "run")
    by_task = select(data.split("test"), args.limit, 42)
    chosen = [e for exs in by_task.values() for e in exs]
    rows = []

    model, tok, has_adapter = load_for_inference(run.path, None, None)
    if has_adapter:
        model.merge_adapter()  # as eval does before the fine-tuned pass
    budget = budgets(by_task, lambda text: len(tok(text)["input_ids"]))
    t = time.perf_counter()
    out = generate(model, tok, [e.prompt for e in chosen], [budget[e.task] for e in chosen], args.batch_size)
    seconds = time.perf_counter() - t
    replies = dict(zip([e.id for e in chosen], out))
    tokens = sum(len(tok(r)["input_ids"]) for r in out)
    rows.append(("HF transformers, batched greedy (eval today)", seconds, tokens, score(by_task, replies, data.path)))
    del model

    for gguf in sorted(run.export_dir.glob("*.gguf")) or sorted((args.workdir / "export").glob("*.gguf")):
        if "lora" in gguf.name or gguf.name.startswith("base-"):
            continue
        llm = load_llama(gguf)
        t = time.perf_counter()
        replies = {e.id: llama_greedy(llm, e.prompt, budget[e.task]) for e in chosen}
        seconds = time.perf_counter() - t
        tokens = sum(len(tok(r)["input_ids"]) for r in replies.values())
        rows.append(
            (f"llama.cpp {gguf.name}, one sequence at a time", seconds, tokens, score(by_task, replies, data.path))
        )
        t = time.perf_counter()
        out = llama_batched_greedy(llm, [e.prompt for e in chosen], [budget[e.task] for e in chosen])
        seconds = time.perf_counter() - t
        replies = dict(zip([e.id for e in chosen], out))
        tokens = sum(len(tok(r)["input_ids"]) for r in out)
        name = f"llama.cpp {gguf.name}, 16 sequences batched (eval --gguf)"
        rows.append((name, seconds, tokens, score(by_task, replies, data.path)))
        llm.close()

    base = rows[0][1]
    print(f"\n{len(chosen)} examples ({', '.join(f'{t} {len(v)}' for t, v in by_task.items())})\n")
    print("| backend | seconds | examples/s | reply tokens/s | vs HF | mean primary score |")
    print("|---|---|---|---|---|---|")
    for name, sec, toks, sc in rows:
        print(f"| {name} | {sec:.1f} | {len(chosen) / sec:.3f} | {toks / sec:.1f} | {base / sec:.2f}x | {sc:.3f} |")
    out_path = Path(__file__).parent / "results" / "eval_throughput.json"
    out_path.write_text(json.dumps([dict(zip(("backend", "seconds", "tokens", "score"), r)) for r in rows], indent=2))


if __name__ == "__main__":
    main()
