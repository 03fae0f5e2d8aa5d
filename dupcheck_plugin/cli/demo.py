"""`dupcheck demo` (being written)."""


def register(sub) -> None:
    pass
