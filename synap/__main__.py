"""``python -m synap`` is ``synap-server``."""

from synap.server_cli import main

if __name__ == "__main__":
    main()
