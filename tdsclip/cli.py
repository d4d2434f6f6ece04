"""The command lines' shared argparse: a bad argument is one line, `<module>: <message>`, exit 2."""

from __future__ import annotations

import argparse


class OneLineParser(argparse.ArgumentParser):
    """prog is `python -m <module>`; errors read `<module>: <message>` instead of usage + message."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog.removeprefix('python -m ')}: {message}\n")
