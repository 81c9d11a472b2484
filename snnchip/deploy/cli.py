"""snn-deploy: not implemented yet."""
import argparse

from ..cli_util import one_line_errors


@one_line_errors
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="snn-deploy", description="not implemented yet")
    parser.parse_args(argv)
    print("snn-deploy: not implemented yet")
    return 1
