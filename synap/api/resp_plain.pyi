"""Types of the Cython module synap/api/resp_plain.pyx (the plain GET/SET read loop)."""

from synap.commands.layer import Commands

def run(
    data: bytes, cmds: Commands, readable: bool, null: bytes, max_bulk: int, result: list[object]
) -> int: ...
