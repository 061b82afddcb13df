"""Data: named datasets -> text -> token ids on disk -> random training windows.

    text = load_text(DataConfig(name="tinyshakespeare"))          # registry.py
    prepare(text, tokenizer, "data/shakespeare", val_fraction=0.1)  # prepare.py
    train = load_tokens("data/shakespeare", "train")              # a read-only memmap
    batch = sample_batch(train, seed=0, step=0, batch_size=16, seq_len=128)  # sampler.py
"""

from tinyslm.data.prepare import encode_in_chunks, load_tokens, prepare, read_meta, split_point, token_dtype
from tinyslm.data.registry import (
    DATASETS,
    Dataset,
    cache_dir,
    dataset_file,
    disease_paragraph,
    get_dataset,
    list_datasets,
    load_labeled,
    load_rows,
    load_text,
    sha256_of,
)
from tinyslm.data.sampler import eval_batches, sample_batch

__all__ = [
    "DATASETS", "Dataset", "list_datasets", "get_dataset", "dataset_file", "cache_dir", "sha256_of",
    "load_text", "load_labeled", "load_rows", "disease_paragraph",
    "prepare", "load_tokens", "read_meta", "split_point", "token_dtype", "encode_in_chunks",
    "sample_batch", "eval_batches",
]
