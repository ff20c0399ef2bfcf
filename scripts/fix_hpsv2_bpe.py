"""hpsv2 1.2.0's wheel lacks its BPE vocabulary, so `import hpsv2.src.open_clip` fails.

open_clip_torch ships the byte-identical file; copy it into the hpsv2 package once after install.
"""

import importlib.util
import shutil
from pathlib import Path

NAME = "bpe_simple_vocab_16e6.txt.gz"


def main() -> None:
    open_clip_dir = Path(importlib.util.find_spec("open_clip").origin).parent
    hpsv2_dir = Path(importlib.util.find_spec("hpsv2").origin).parent / "src" / "open_clip"
    target = hpsv2_dir / NAME
    if not target.exists():
        shutil.copyfile(open_clip_dir / NAME, target)
        print(f"copied {NAME} into {hpsv2_dir}")


if __name__ == "__main__":
    main()
