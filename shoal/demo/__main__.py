"""``python -m shoal.demo [options]``: the same as ``shoal demo [options]``."""

import argparse
import sys

from shoal.demo import add_demo_arguments, run_demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="shoal demo",
        description="Load the viewer-events demo data into a running Shoal and show how to query it.")
    add_demo_arguments(parser)
    return run_demo(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
