"""The only package of rtvoice that imports TensorRT.

- :mod:`rtvoice.trt.profiles`: optimization profiles as data, from ``voice.json`` (pure).
- :mod:`rtvoice.trt.cache`: the cache key beside each plan, and when a plan is current (pure).
- :mod:`rtvoice.trt.build`: ONNX -> plan (``build_engine``, ``build_voice_engines``, and
  ``python -m rtvoice.trt.build FOLDER``), with the precision policy.
- :mod:`rtvoice.trt.runner`: :class:`~rtvoice.trt.runner.TrtRunner`, one plan on one stream
  (``run``, and ``bind`` for runs that only enqueue).
- :mod:`rtvoice.trt.context`: one execution context and what was last set on it.
- :mod:`rtvoice.trt.engine`: :class:`~rtvoice.trt.engine.TrtEngine`, the GPU engine on TensorRT.
- :mod:`rtvoice.trt._tensorrt`: the one ``import tensorrt`` (and the TensorRT-RTX fallback
  used only to check builds on a CPU).

Importing this package imports no TensorRT; the submodules import it when first used.
"""
