"""The config package's one error type (every module raises it; mbexp prints it as one line)."""


class ConfigError(ValueError):
    """A bad -env / -ca / -o input; the message names the culprit and the valid choices."""
