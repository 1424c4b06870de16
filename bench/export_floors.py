"""Top-1 agreement of every quantization export can ship, against the merged float32 HF model: the evidence for
export's MIN_TOP1 floors.

    python bench/export_floors.py --run work/quickstart/run [--examples 64]

Merges the run once, writes the f16 GGUF once, quantizes it to each kind in export.QUANTS, and verifies each
file with export's own verify() on the run's eval split (topped up with the packaged knowledge questions).
Writes bench/results/export_floors.json and .md, with the command, commit and CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from provenance import machine_line, provenance

from clinitune.export.gguf_writer import write_gguf
from clinitune.export.run import MIN_TOP1, QUANTS, hf_reference, merge, quantize, verification_examples, verify
from clinitune.layout import RunDir

RESULTS = Path(__file__).parent / "results"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--examples", type=int, default=64)
    ap.add_argument("--out", type=Path, default=RESULTS / "export_floors")
    args = ap.parse_args(argv)
    rd = RunDir(args.run)
    cfg = rd.read_config()
    examples = verification_examples(cfg.data.eval or cfg.data.test, args.examples)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        merged = merge(args.run, Path(tmp) / "merged")
        ref = hf_reference(merged, examples)
        f16 = write_gguf(merged, Path(tmp) / "f16.gguf", dtype="f16")
        files = {"f16": f16}
        for kind in QUANTS:
            files[kind] = Path(tmp) / f"{kind}.gguf"
            quantize(f16, files[kind], kind)
        # The negative control: the base model alone, as if the export had lost the fine-tune.
        files["base f16 (fine-tune lost)"] = write_gguf(
            rd.read_summary().base_model, Path(tmp) / "base.gguf", dtype="f16"
        )
        for kind, path in files.items():
            v = verify(path, ref)
            rows[kind] = {k: v[k] for k in ("top1_agreement", "top1_ci95", "mean_kl", "positions", "examples")}
            rows[kind]["floor"] = MIN_TOP1.get(kind, MIN_TOP1["f16"])
            print(kind, rows[kind], file=sys.stderr)
    p = provenance()
    result = {**p, "run": str(args.run), "base_model": rd.read_summary().base_model, "kinds": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# Export verification per kind ({machine_line(p)}; commit {p['commit']})",
        "",
        f"`{p['command']}`: {len(examples)} examples, base {result['base_model']}",
        "",
        "| kind | top-1 agreement [95 % CI] | floor | mean KL | positions |",
        "|---|---|---|---|---|",
    ]
    for kind, r in rows.items():
        lo, hi = r["top1_ci95"]
        lines.append(
            f"| {kind} | {r['top1_agreement']} [{lo}, {hi}] | {r['floor']} | {r['mean_kl']} | {r['positions']} |"
        )
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
