"""Interoperability: bring pretrained models in, and send tinyslm models out.

* :mod:`tinyslm.interop.hf` — Hugging Face model directories (config.json + safetensors +
  tokenizer files) for GPT-2, Llama (SmolLM2, Llama 3.2) and Qwen2: ``import_hf`` / ``export_hf``.
* :mod:`tinyslm.interop.gguf` — GGUF files, the single-file format of llama.cpp and Ollama,
  quantized or not: ``import_gguf`` / ``export_gguf``.
* :mod:`tinyslm.interop.hf_tokenizer` — :class:`HFTokenizer`, a pretrained model's tokenizer
  behind tinyslm's tokenizer interface.

Everything here needs the ``hf`` extra (``pip install 'tinyslm[hf]'``): ``safetensors``,
``tokenizers`` and ``gguf``; the tests compare against ``transformers``. Imported models become
ordinary run directories, so ``tinyslm generate``, ``eval``, ``quantize`` ... work on them.
"""

from tinyslm.interop.gguf import export_gguf, import_gguf, load_gguf
from tinyslm.interop.hf import export_hf, import_hf, load_hf
from tinyslm.interop.hf_tokenizer import HFTokenizer

__all__ = ["import_hf", "export_hf", "load_hf", "import_gguf", "export_gguf", "load_gguf", "HFTokenizer"]
