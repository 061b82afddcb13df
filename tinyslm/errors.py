"""One family of errors for everything a user can get wrong.

Every message says what was wrong, where, and what to do about it, so that a user never has to
read a JAX traceback to find a typo in a config or a missing file.
"""


class TinySLMError(Exception):
    """Base class: catch this to handle any tinyslm user error."""


class ConfigError(TinySLMError):
    """A config value, key or combination is invalid (the message names the key's dotted path)."""


class DataError(TinySLMError):
    """A dataset or data file is missing, corrupt, or cannot be fetched."""


class TokenizerError(TinySLMError):
    """Text cannot be encoded, or tokenizer files are missing or invalid."""


class CheckpointError(TinySLMError):
    """A run directory or checkpoint is missing, incomplete, or does not match the config."""


class GenerationError(TinySLMError):
    """A generation request cannot be served (e.g. the prompt is longer than the context)."""


class TrainingError(TinySLMError):
    """Training cannot go on (e.g. the loss became NaN); the message says which step and what to try."""
