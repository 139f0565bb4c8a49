"""``python -m lossjit``: the command-line tool."""

from lossjit.cli import main

if __name__ == "__main__":
    main()
