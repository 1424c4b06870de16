"""Third-party noise stays off the user's terminal and goes to the job's log; clinitune's own lines stay."""

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import logging, os, sys, warnings
    from pathlib import Path
    from clinitune import logs
    logs.setup(quiet=False)
    logs.to_file(Path(sys.argv[1]))
    logging.getLogger("clinitune.train").info("step 1/4 loss 2.1")
    warnings.warn("`foo` is deprecated and will be removed in v6", FutureWarning)
    import deepspeed  # its import warns "Setting accelerator to CPU" on a machine without a GPU
    logging.getLogger("DeepSpeed").warning("some deepspeed notice")
    logging.getLogger("transformers.modeling_utils").warning("advisory from a library")
    logging.getLogger("peft").error("a library error the user must see")
    print("TRANSFORMERS_VERBOSITY=" + os.environ["TRANSFORMERS_VERBOSITY"])
    with logs.native_output_to(Path(sys.argv[2])):
        os.write(2, b"llama.cpp per-tensor line\\n")
    print("after native")
    """
)


def test_terminal_gets_our_lines_and_errors_the_log_gets_everything(tmp_path):
    log, native = tmp_path / "job.log", tmp_path / "native.log"
    res = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(log), str(native)], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    terminal = res.stdout + res.stderr
    assert "step 1/4 loss 2.1" in terminal
    assert "a library error the user must see" in terminal
    for noise in ("deprecated", "Setting accelerator", "some deepspeed notice", "advisory", "per-tensor"):
        assert noise not in terminal, noise
    assert "after native" in res.stdout  # the descriptors came back
    written = log.read_text()
    assert "step 1/4 loss 2.1" in written and "deprecated" in written and "advisory from a library" in written
    assert "llama.cpp per-tensor line" in native.read_text()
