"""The one base class of the errors openfas raises.

Every error openfas raises about bad input (a config key, a file, a checkpoint, a dataset layout, an image)
derives from :class:`OpenFASError` and keeps its builtin base too (``ConfigError`` is still a ``ValueError``,
``CheckpointError`` still a ``RuntimeError``), so a caller catches all of them with one class and the command
line turns any of them into a one-line message and exit status 2. This module imports nothing from openfas.
"""


class OpenFASError(Exception):
    """Base of every openfas error; the message names the file or option and the problem."""
