"""The one exception type the CLI turns into a clean one-line error."""


class StackError(Exception):
    """A fault the user can act on; ``detail`` holds extra lines (log tail, mvn errors)."""

    def __init__(self, message: str, detail: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail or []
