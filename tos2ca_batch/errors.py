"""Errors a user can act on."""


class SpecError(ValueError):
    """A refused job spec: the message names the field and what is allowed."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
