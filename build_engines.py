#!/usr/bin/env python3
"""Build an rtvoice voice: NVIDIA checkpoints (or seeded random weights) -> ONNX -> TensorRT.

    python build_engines.py --tacotron2 T.pt --waveglow W.pt --out engines/NAME
    python build_engines.py --random tiny --out engines/tiny

Needs the build extra (torch): pip install '.[build]'.
"""

from rtvoice.export.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
