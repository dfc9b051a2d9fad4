"""The one error type of bad configuration; its message is a single line naming the key at fault."""


class ConfigError(ValueError):
    pass
