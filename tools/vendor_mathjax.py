"""Place a trimmed, verified copy of MathJax 3.2.2 in a folder, so the book renders math offline.

The tarball comes from the npm registry (reachable wherever ``pip`` is) and is checked against
its sha256 before anything is extracted. Only what ``tex-mml-chtml.js`` needs is kept (~3 MB).
The folder is filled in a temporary directory and renamed into place when complete.

Usage: python tools/vendor_mathjax.py _vendor/mathjax
"""

from __future__ import annotations

import hashlib
import io
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

URL = "https://registry.npmjs.org/mathjax/-/mathjax-3.2.2.tgz"
SHA256 = "1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09"
KEEP = ("es5/tex-mml-chtml.js", "es5/output/chtml/fonts/woff-v2/", "es5/input/tex/extensions/",
        "es5/ui/", "es5/a11y/", "LICENSE")


def main(target: str) -> int:
    dest = Path(target)
    if (dest / "es5" / "tex-mml-chtml.js").exists():
        return 0
    print(f"fetching MathJax 3.2.2 for offline math into {dest}")
    try:
        with urllib.request.urlopen(URL, timeout=60) as response:
            data = response.read()
    except OSError as err:
        print(f"error: could not download {URL}: {err}\nFix: connect to the npm registry, or copy "
              f"the mathjax@3.2.2 package's files into {dest}.", file=sys.stderr)
        return 1
    actual = hashlib.sha256(data).hexdigest()
    if actual != SHA256:
        print(f"error: {URL} has sha256 {actual}, expected {SHA256}; refusing to use it.", file=sys.stderr)
        return 1
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".mathjax-", dir=dest.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar.getmembers():
                rel = member.name.removeprefix("package/")
                if member.isfile() and rel.startswith(KEEP):
                    member.name = rel
                    tar.extract(member, staging, filter="data")
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "_vendor/mathjax"))
