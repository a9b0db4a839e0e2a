"""The small exception tree Uncia raises on purpose; anything else is a bug.

    UnciaError
    ├── ConfigError            bad option value, unreadable config file
    ├── InputError             bad deployments table, missing images root
    ├── ModelError             a backbone or head that cannot be used
    │   ├── WeightsNotFoundError    no weights file, cache or network
    │   └── UntrainedWeightsError   weights that were never trained
    └── StoreError             an output folder that cannot be read or written

The CLI prints one line for any UnciaError and exits non-zero; the dashboard shows an alert.
A bad *image* is not an error: it becomes a row with a failure reason.
"""


class UnciaError(Exception):
    """Base of every error Uncia raises on purpose."""


class ConfigError(UnciaError):
    """An option, setting or config file that cannot be used."""


class InputError(UnciaError):
    """Survey input that cannot be used: deployments table, images root."""


class ModelError(UnciaError):
    """A model (backbone or head) that cannot be loaded or used."""


class WeightsNotFoundError(ModelError):
    """No weights could be found for a backbone: no file, no cache entry, no network."""


class UntrainedWeightsError(ModelError):
    """Weights that look untrained (e.g. BatchNorm statistics still at their initial values)."""


class StoreError(UnciaError):
    """An output folder that cannot be read or written."""
